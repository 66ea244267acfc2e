"""``periodic``: drop-and-grow every ΔT steps at constant per-layer counts (SET, RigL).

Training starts from a sparse mask under the run's allocation: uniformly random within each layer's
allotted count (``init = "random"``, SET and RigL with ``allocation = "erk"``) or the pruner's own mask
at initialisation (``init = "pruner"``).  Every ΔT steps (``update_interval``), while
start·T ≤ t < end·T, each layer l

1. drops the k_l = round(f(t) · n_l) active weights with the lowest drop score (n_l = active weights
   of the layer): the pruner's score of the network being trained, |θ| of the merged weights for
   ``set`` and ``rigl``;
2. grows k_l weights among the inactive ones (those just dropped included, as in the RigL code) with
   the highest grow score: uniformly random (``grow = "random"``, SET), the dense gradient magnitude
   |∂L/∂θ| on the current batch (``grow = "gradient"``, RigL eq. 2; one extra forward-backward at
   update steps only, w.r.t. the effective weights θ) or the pruner's own score (``grow = "pruner"``:
   a plugin's criterion, :meth:`pruners.Pruner.training_scores`).

The fraction decays with RigL's cosine schedule f(t) = α/2 (1 + cos(π (t − t_s)/(t_e − t_s)))
(``decay = "cosine"``) or stays α (``decay = "constant"``; SET's original ζ = 0.3 per epoch).  Grown
weights start at exactly zero and their momentum / Adam state is reset (``MaskEnforcer.update``); a
dropped-and-regrown weight keeps its value (RigL code).  No update happens at or after end·T.  t
counts completed optimiser steps (updates run after the optimiser step of step t).

Reference counting and timing (issue 19), as options; the defaults above are the paper's description:

* ``counting = "reference"`` drops and grows k_l = ⌊f(t) · n_l⌋ (the int cast of google-research/rigl's
  ``SparseSETOptimizerBase._get_update_op`` and of verbose-void/rigl-torch) instead of round.
* ``timing = "replace_step"``: the mask update takes the place of the optimiser step of its iteration
  (RigL's ``SparseRigLOptimizerBase.apply_gradients`` and rigl-torch's ``RigLScheduler.__call__``
  returning False): drop score |θ| and grow gradient are those of the batch's pre-step weights, and
  that batch's optimiser update is skipped (t still counts it, as rigl-torch does).  The default
  ``after_step`` updates after the optimiser step of step t (SET's TF code applies the gradient first).
* ``update_at_start = true`` (with ``replace_step`` only) also updates on the very first batch, at
  f = α (the TF code's global step 0).  The TF code does not advance its global step on an update
  iteration; t here counts every batch, as rigl-torch does.

With ``counting = "reference"`` and ``timing = "replace_step"`` the masks are rigl-torch's bit for bit
(tests/pruners/test_rigl_reference.py; the TF code itself was not run here).

FLOPs (Evci et al. 2020, App. H): a gradient-grow update step replaces the sparse weight gradient by
a dense one, costing (f_D − f_S) more per sample than a sparse step; that amount is added to
``TrainState.extra_train_flops`` at every update step (in the per-sample FLOP units of
``benchmark.metrics.FlopsTracker``), with f_D, f_S from the layer MACs counted in the gradient pass.
Our implementation runs a separate forward-backward for the gradient (simpler; its wall time is
larger than the paper's accounting).  Random growth adds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
import torch
from torch import nn

from pruners.allocation import Allocation, stable_order
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError
from pruners.schedules.base import Schedule, register_schedule
from pruners.schedules.helpers import cosine_fraction, effective_weights, theta_gradients

GROW = ("random", "gradient", "pruner")
INIT = ("random", "pruner")
COUNTING = ("exact", "reference")
TIMING = ("after_step", "replace_step")


def drop_grow(mask: torch.Tensor, keep_score: torch.Tensor, grow_score: torch.Tensor, k: int) -> torch.Tensor:
    """One layer's update: drop the ``k`` active entries of lowest ``keep_score``, grow the ``k``
    inactive entries (after the drop) with the highest ``grow_score``.  Ties: lower flat index first.

    The number of active entries is unchanged.
    """
    flat = mask.reshape(-1)
    n_active = int(flat.sum())
    k = max(0, min(int(k), n_active, flat.numel() - n_active + k))
    if k == 0:
        return mask.clone()
    w = keep_score.detach().reshape(-1).float()
    floor = min(-1.0, float(w.min()) - 1.0)
    # drop: keep the n_active - k highest scores among active entries
    kept = torch.zeros_like(flat)
    kept[stable_order(torch.where(flat, w, torch.full_like(w, floor)))[: n_active - k]] = True
    # grow: the k highest scores among entries inactive after the drop
    g = grow_score.detach().reshape(-1).float().to(w.device)
    grow_candidates = torch.where(kept, torch.full_like(g, -float("inf")), g)
    order = torch.sort(grow_candidates, descending=True, stable=True).indices[:k]
    new = kept.clone()
    new[order] = True
    return new.view_as(mask)


class _DropGrowCallback(Callback):
    def __init__(self, schedule: "Periodic", pruner) -> None:
        self.schedule, self.pruner = schedule, pruner
        self.updates: list[dict] = []
        self.extra_flops = 0.0

    def on_start(self, state: TrainState) -> None:
        T = state.total_steps
        self.t_start = int(round(self.schedule.start * T))
        self.t_end = int(round(self.schedule.end * T))

    def is_update_step(self, t: int) -> bool:
        return t > 0 and t % self.schedule.update_interval == 0 and self.t_start <= t < self.t_end

    @property
    def replaces_step(self) -> bool:
        return self.schedule.timing == "replace_step"

    def fraction(self, t: int) -> float:
        if self.schedule.decay == "cosine":
            return cosine_fraction(self.schedule.drop_fraction, t, self.t_start, self.t_end)
        return self.schedule.drop_fraction

    def grow_scores(self, state: TrainState, masks: Masks, t: int) -> dict[str, torch.Tensor]:
        grow = self.schedule.grow
        if grow == "random":
            g = state.ctx.generator(tag=100_003 + t)
            return {n: torch.rand(m.shape, generator=g) for n, m in masks.items()}
        if grow == "pruner":
            return self.pruner.training_scores(state)
        if state.batch is None:
            raise ConfigError("gradient growth needs the current batch in TrainState.batch; run it with the "
                              "standard loop")
        grads, macs = theta_gradients(state.model, effective_weights(state), state.batch, state.ctx.loss_fn)
        dens = masks.layer_density()
        f_d = sum(2.0 * m for m in macs.values())
        f_s = sum(2.0 * m * dens.get(n, 1.0) for n, m in macs.items())
        state.extra_train_flops += f_d - f_s
        self.extra_flops += f_d - f_s
        return {n: g.abs() for n, g in grads.items()}

    def before_step(self, state: TrainState) -> None:
        if not self.replaces_step:
            return
        t = state.step + 1
        if self.is_update_step(t):
            self.update(state, t, self.fraction(t))
        elif self.schedule.update_at_start and state.step == 0:
            self.update(state, t, self.fraction(self.t_start))
        else:
            return
        state.skip_step = True

    def after_step(self, state: TrainState) -> None:
        t = state.step + 1
        if not self.replaces_step and self.is_update_step(t):
            self.update(state, t, self.fraction(t))

    def update(self, state: TrainState, t: int, frac: float) -> None:
        old = state.masks.masks
        drop = self.pruner.training_scores(state)
        scores = self.grow_scores(state, old, t)
        count = (lambda x: int(x)) if self.schedule.counting == "reference" else (lambda x: int(round(x)))
        new, changed = {}, 0
        for n, m in old.items():
            new[n] = drop_grow(m, drop[n], scores[n], count(frac * int(m.sum())))
            changed += int((new[n] & ~m).sum())
        state.masks.update(Masks(new), state.optimizer)
        self.updates.append({"t": t, "fraction": frac, "grown": changed})

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["dst_updates"] = len(self.updates)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "extra_flops": self.extra_flops}

    def load_state_dict(self, state: dict) -> None:
        self.updates = list(state["updates"])
        self.extra_flops = float(state["extra_flops"])


@register_schedule("periodic")
@dataclass
class Periodic(Schedule):
    """Drop-and-grow every ``update_interval`` steps with a decaying fraction (SET, RigL).

    Attributes:
        update_interval: ΔT, optimiser steps between mask updates (> 0).
        drop_fraction: α, the fraction of each layer's active weights replaced at the first update.
        decay: ``cosine`` (RigL) or ``constant``.
        start: first update at or after this fraction of training.
        end: no update at or after this fraction of training (> start).
        init: the starting mask: ``random`` within each layer's count, or ``pruner`` (its mask at init).
        grow: ``random`` (SET), ``gradient`` (RigL) or ``pruner`` (the pruner's own score).
        counting: ``exact`` (k = round(f·n)) or ``reference`` (⌊f·n⌋, the RigL codes).
        timing: ``after_step`` (update after the step's optimiser update) or ``replace_step`` (the RigL
            codes: the update replaces that step's optimiser update, scores at the pre-step weights).
        update_at_start: also update on the first batch (the TF code's step 0; ``replace_step`` only).
    """

    update_interval: int = 100
    drop_fraction: float = 0.3
    decay: str = "cosine"
    start: float = 0.0
    end: float = 0.75
    init: str = "pruner"
    grow: str = "gradient"
    counting: str = "exact"
    timing: str = "after_step"
    update_at_start: bool = False

    family = "dst"
    description = "drop-and-grow every update_interval steps at constant layer counts (SET / RigL)"

    def validate(self) -> None:
        name = self.label
        if self.update_interval <= 0:
            raise ConfigError(f"{name} update_interval (ΔT) must be a positive number of steps, got "
                              f"{self.update_interval}; use e.g. 100")
        if not 0.0 < self.drop_fraction <= 1.0:
            raise ConfigError(f"{name} drop_fraction {self.drop_fraction} is outside (0, 1]; use e.g. 0.3")
        if self.decay not in ("cosine", "constant"):
            raise ConfigError(f"{name} decay {self.decay!r} is unknown; choose 'cosine' or 'constant'")
        if not 0.0 <= self.start < 1.0 or not 0.0 < self.end <= 1.0:
            raise ConfigError(f"{name} start {self.start} / end {self.end} must be fractions of training in [0, 1]")
        if self.end <= self.start:
            raise ConfigError(f"{name} end fraction {self.end} must be after start {self.start}; e.g. start = 0, "
                              "end = 0.75")
        if self.grow not in GROW:
            raise ConfigError(f"{name} grow {self.grow!r} is unknown; choose one of {', '.join(GROW)}")
        if self.init not in INIT:
            raise ConfigError(f"{name} init {self.init!r} is unknown; choose one of {', '.join(INIT)}")
        if self.counting not in COUNTING:
            raise ConfigError(f"{name} counting {self.counting!r} is unknown; choose one of {', '.join(COUNTING)}")
        if self.timing not in TIMING:
            raise ConfigError(f"{name} timing {self.timing!r} is unknown; choose one of {', '.join(TIMING)}")
        if self.update_at_start and self.timing != "replace_step":
            raise ConfigError(f"{name} update_at_start needs timing = 'replace_step' (the TF code's step-0 update "
                              "replaces that step); set both or neither")

    def initial_masks(self, pruner, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        if self.init == "pruner":
            return pruner.select(model, ctx, 1.0 - float(sparsity), allocation)
        g = ctx.generator(tag=2)
        scores = {n: torch.rand(p.shape, generator=g).to(p.device) for n, p in prunable_parameters(model).items()}
        return allocation.masks(scores, 1.0 - float(sparsity))

    def callbacks(self, pruner, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._cb = _DropGrowCallback(self, pruner)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"updates": len(cb.updates), "grown_total": sum(u["grown"] for u in cb.updates),
                "last_update_step": cb.updates[-1]["t"] if cb.updates else None,
                "extra_train_flops": cb.extra_flops}
