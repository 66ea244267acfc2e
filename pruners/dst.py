"""Dynamic sparse training: SET (Mocanu et al. 2018) and RigL (Evci et al. 2020).

Both start from a sparse random mask under the run's allocation (``erk`` in the papers: pass
``allocation = "erk"``; random scores go through ``allocation.masks``, so each layer keeps a uniformly
random subset of its allotted size) and keep every layer's number of active weights constant.  Every
ΔT steps (``update_interval``), while start·T ≤ t < end·T, each layer l

1. drops the k_l = round(f(t) · n_l) active weights with the smallest |θ| (n_l = active weights of
   the layer, θ the merged weights);
2. grows k_l weights among the inactive ones (those just dropped included, as in the RigL code):
   uniformly at random (SET) or with the largest |∂L/∂θ| of the dense gradient (RigL, eq. 2);
   the dense gradient is computed only at update steps, by one extra forward-backward on the current
   batch w.r.t. the effective weights θ.

The update fraction decays with RigL's cosine schedule f(t) = α/2 (1 + cos(π (t − t_s)/(t_e − t_s)))
(``decay = "cosine"``) or stays α (``decay = "constant"``; SET's original ζ = 0.3 per epoch).  Grown
weights start at exactly zero, and their momentum / Adam state is reset (``MaskEnforcer.update``);
a dropped-and-regrown weight keeps its value (RigL code).  No update happens at or after end·T.
t counts completed optimiser steps (updates run after the optimiser step of step t).

FLOPs (Evci et al. 2020, App. H): a RigL update step replaces the sparse weight gradient by a dense
one, costing (f_D − f_S) more per sample than a sparse step; that amount is added to
``TrainState.extra_train_flops`` at every update step (in the per-sample FLOP units of
``benchmark.metrics.FlopsTracker``), with f_D, f_S from the layer MACs counted in the gradient pass.
Our implementation runs a separate forward-backward for the gradient (simpler; its wall time is
larger than the paper's accounting).  SET adds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from pruners.allocation import Allocation, stable_order
from pruners.base import Pruner, density_of, register_pruner
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError
from pruners.schedules import cosine_fraction, effective_weights, theta_gradients


def drop_grow(mask: torch.Tensor, weight: torch.Tensor, grow_score: torch.Tensor, k: int) -> torch.Tensor:
    """One layer's update: drop the ``k`` active entries of smallest |weight|, grow the ``k`` inactive
    entries (after the drop) with the largest ``grow_score``.  Ties: lower flat index first.

    The number of active entries is unchanged.
    """
    flat = mask.reshape(-1)
    n_active = int(flat.sum())
    k = max(0, min(int(k), n_active, flat.numel() - n_active + k))
    if k == 0:
        return mask.clone()
    w = weight.detach().abs().reshape(-1).float()
    # drop: keep the n_active - k largest |θ| among active entries
    keep_score = torch.where(flat, w, torch.full_like(w, -1.0))
    kept = torch.zeros_like(flat)
    kept[stable_order(keep_score)[: n_active - k]] = True
    # grow: the k largest scores among entries inactive after the drop
    g = grow_score.detach().reshape(-1).float().to(w.device)
    grow_candidates = torch.where(kept, torch.full_like(g, -float("inf")), g)
    order = torch.sort(grow_candidates, descending=True, stable=True).indices[:k]
    new = kept.clone()
    new[order] = True
    return new.view_as(mask)


class _DropGrowCallback(Callback):
    def __init__(self, pruner: "_DynamicSparse") -> None:
        self.pruner = pruner
        self.updates: list[dict] = []
        self.extra_flops = 0.0

    def on_start(self, state: TrainState) -> None:
        T = state.total_steps
        self.t_start = int(round(self.pruner.start * T))
        self.t_end = int(round(self.pruner.end * T))

    def is_update_step(self, t: int) -> bool:
        return t > 0 and t % self.pruner.update_interval == 0 and self.t_start <= t < self.t_end

    def fraction(self, t: int) -> float:
        if self.pruner.decay == "cosine":
            return cosine_fraction(self.pruner.drop_fraction, t, self.t_start, self.t_end)
        return self.pruner.drop_fraction

    def after_step(self, state: TrainState) -> None:
        t = state.step + 1
        if not self.is_update_step(t):
            return
        frac = self.fraction(t)
        theta = effective_weights(state)
        old = state.masks.masks
        scores = self.pruner.grow_scores(state, theta, old, t)
        new, changed = {}, 0
        for n, m in old.items():
            k = int(round(frac * int(m.sum())))
            new[n] = drop_grow(m, theta[n], scores[n], k)
            changed += int((new[n] & ~m).sum())
        new_masks = Masks(new)
        state.masks.update(new_masks, state.optimizer)
        self.updates.append({"t": t, "fraction": frac, "grown": changed})

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["dst_updates"] = len(self.updates)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "extra_flops": self.extra_flops}

    def load_state_dict(self, state: dict) -> None:
        self.updates = list(state["updates"])
        self.extra_flops = float(state["extra_flops"])


@dataclass
class _DynamicSparse(Pruner):
    """Shared drop-and-grow schedule of SET and RigL.

    Attributes:
        update_interval: ΔT, optimiser steps between mask updates (> 0).
        drop_fraction: α, the fraction of each layer's active weights replaced at the first update.
        decay: ``cosine`` (RigL) or ``constant``.
        start: first update at or after this fraction of training.
        end: no update at or after this fraction of training (> start).
    """

    update_interval: int = 100
    drop_fraction: float = 0.3
    decay: str = "cosine"
    start: float = 0.0
    end: float = 0.75

    family = "dst"

    def validate(self) -> None:
        name = self.registry_name
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

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        g = ctx.generator(tag=2)
        scores = {n: torch.rand(p.shape, generator=g).to(p.device) for n, p in prunable_parameters(model).items()}
        return allocation.masks(scores, density_of(sparsity))

    def grow_scores(self, state: TrainState, theta: Mapping[str, torch.Tensor], masks: Masks,
                    t: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._cb = _DropGrowCallback(self)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"updates": len(cb.updates), "grown_total": sum(u["grown"] for u in cb.updates),
                "last_update_step": cb.updates[-1]["t"] if cb.updates else None,
                "extra_train_flops": cb.extra_flops}


@register_pruner("set")
@dataclass
class SET(_DynamicSparse):
    """Sparse Evolutionary Training: drop smallest |θ|, grow uniformly at random.

    The paper updates once per epoch with ζ = 0.3 and no decay; the defaults here follow RigL's
    comparison of SET (ΔT = 100, α = 0.3, cosine, end 75 %).  Set ``update_interval`` to the steps
    per epoch and ``decay = "constant"`` for the original.
    """

    family = "dst"
    description = "SET: magnitude drop, random grow"
    paper = "Mocanu et al., Nature Communications 2018"
    url = "https://arxiv.org/abs/1707.04780"

    def grow_scores(self, state: TrainState, theta: Mapping[str, torch.Tensor], masks: Masks,
                    t: int) -> dict[str, torch.Tensor]:
        g = state.ctx.generator(tag=100_003 + t)
        return {n: torch.rand(m.shape, generator=g) for n, m in masks.items()}


@register_pruner("rigl")
@dataclass
class RigL(_DynamicSparse):
    """Rigging the Lottery: magnitude drop, grow by the dense gradient magnitude |∂L/∂θ| (eq. 2)."""

    family = "dst"
    description = "RigL: magnitude drop, gradient grow"
    paper = "Evci, Gale, Menick, Castro, Elsen, ICML 2020"
    url = "https://arxiv.org/abs/1911.11134"

    def grow_scores(self, state: TrainState, theta: Mapping[str, torch.Tensor], masks: Masks,
                    t: int) -> dict[str, torch.Tensor]:
        if state.batch is None:
            raise ConfigError("rigl needs the current batch in TrainState.batch; run it with the standard loop")
        grads, macs = theta_gradients(state.model, theta, state.batch, state.ctx.loss_fn)
        dens = masks.layer_density()
        f_d = sum(2.0 * m for m in macs.values())
        f_s = sum(2.0 * m * dens.get(n, 1.0) for n, m in macs.items())
        extra = f_d - f_s
        state.extra_train_flops += extra
        self._cb.extra_flops += extra
        return {n: g.abs() for n, g in grads.items()}
