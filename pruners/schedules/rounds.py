"""``rounds``: iterative pruning in rounds with weight rewinding (IMP) or learning-rate rewinding (LRR).

- ``rewind = "weights"`` (``imp``): lottery-ticket IMP with rewinding (Frankle & Carbin, ICLR 2019;
  Frankle, Dziugaite, Roy, Carbin, ICML 2020): train, prune a fraction ``rate`` of the surviving
  weights with the pruner's score, reset the surviving weights to their values θ_k at the rewind point
  k, train again; repeat until the target density.  ``rewind_epoch = 0`` is the original lottery
  ticket (reset to θ_0).
- ``rewind = "lr"`` (``lrr``; Renda, Frankle, Carbin, ICLR 2020): the same rounds, but the weights are
  *not* reset — training continues from the pruned final weights while the learning-rate schedule
  restarts from its beginning.

Rounds.  With keep = 1 − rate and target density d, the pruning steps reach densities
keep, keep², …, keep^{n−1}, d with n = ⌈log d / log keep⌉ (the last step hits the target exactly).
The run trains n + 1 rounds of the recipe's epochs each (round 0 dense): ``total_epochs`` =
(n + 1)·recipe.epochs and ``lr_cycle_epochs`` = recipe.epochs, so every round is an epoch-aligned
stage of the run with the learning-rate schedule restarted (the runner honours both).  Pruning happens
at the start of the first epoch of rounds 1 … n; it ranks the pruner's score (|θ| of the merged
weights for imp / lrr) under the run's allocation (``global`` by default, as in Frankle et al. 2020
for deep networks), nested in the current mask.

Choices (documented in docs/methods/dense-to-sparse.md):
- each round trains the full recipe length (Frankle et al. 2020 retrain from step k to T, i.e. T − k
  steps, with the schedule from step k; here a round is T steps with the schedule restarted at 0 so
  rounds stay epoch-aligned; the difference is k steps at the warm-up/high-lr end);
- the optimiser state (momentum, Adam moments) is reset at every round start (``reset_optimizer``),
  as a fresh training run of OpenLTH's levels would;
- the rewind point is given in epochs (``rewind_epoch``, may be fractional) and converted to a step
  k = round(rewind_epoch · steps_per_epoch); the rewind state is the whole ``state_dict`` of the
  model (parameters of any reparam and buffers such as BatchNorm statistics).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from pruners.allocation import Allocation
from pruners.hooks import Callback, TrainState
from pruners.masks import Masks
from pruners.registry import ConfigError
from pruners.schedules.base import Schedule, register_schedule
from pruners.schedules.helpers import reset_all_optimizer_state

REWIND = ("weights", "lr")


def round_densities(rate: float, density: float) -> list[float]:
    """Target densities after each pruning step: keep, keep², …, then exactly ``density``.

    A power within 1e-9 (relative) of the target counts as reaching it, so 0.8² = 0.64 is one step.
    """
    keep = 1.0 - rate
    if density >= 1.0:
        return []
    n = max(1, math.ceil(math.log(density) / math.log(keep) - 1e-9))
    return [keep ** r for r in range(1, n)] + [density]


class _RoundsCallback(Callback):
    """Prunes at round boundaries; with weight rewinding also saves θ_k and rewinds to it."""

    def __init__(self, schedule: "Rounds", pruner, densities: list[float], allocation: Allocation) -> None:
        self.schedule, self.pruner, self.densities, self.allocation = schedule, pruner, densities, allocation
        self.rounds = len(densities) + 1
        self.rewind_state: dict[str, torch.Tensor] | None = None
        self.rewind_step: int | None = None
        self.history: list[dict[str, Any]] = []
        self.tickets: list[Masks] = []

    def on_start(self, state: TrainState) -> None:
        if state.epochs % self.rounds:
            raise ConfigError(f"{self.schedule.label} expects {self.rounds} rounds of equal length but the "
                              f"run trains {state.epochs} epochs; use the runner's total_epochs")
        self.round_epochs = state.epochs // self.rounds
        self.round_steps = self.round_epochs * state.steps_per_epoch
        self.k = self.schedule.rewind_steps(state.steps_per_epoch)
        if self.k is not None:
            if self.k >= self.round_steps:
                raise ConfigError(f"rewind point step {self.k} is not inside one round of {self.round_steps} "
                                  "steps; lower rewind_epoch")
            if self.k == 0:
                self._snapshot(state, 0)

    def _snapshot(self, state: TrainState, step: int) -> None:
        self.rewind_state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self.rewind_step = step

    def after_step(self, state: TrainState) -> None:
        # after the optimiser step with index state.step, the weights are θ_{state.step + 1}
        if self.k is not None and self.k > 0 and self.rewind_state is None and state.step + 1 == self.k:
            self._snapshot(state, self.k)

    # round boundaries --------------------------------------------------------------------------
    def on_epoch_start(self, state: TrainState) -> None:
        if state.epoch == 0 or state.epoch % self.round_epochs:
            return
        r = state.epoch // self.round_epochs            # round about to start, 1 … n
        if r > len(self.densities) or len(self.history) >= r:
            return
        target = self.densities[r - 1]
        masks = self.pruner.training_select(state, target, self.allocation, within=state.masks.masks)
        if self.rewind_state is not None:
            with torch.no_grad():
                current = state.model.state_dict()
                for key, value in self.rewind_state.items():
                    current[key].copy_(value)
            # entries pruned in an earlier round were rewound to θ_k; re-zero them with the old mask
            state.masks.apply_weights()
        state.masks.update(masks, state.optimizer)
        if self.schedule.reset_optimizer:
            reset_all_optimizer_state(state.optimizer)
        self.tickets.append(Masks({n: m.cpu() for n, m in masks.items()}))
        self.history.append({"round": r, "epoch": state.epoch, "step": state.step, "target_density": target,
                             "density": masks.density(), "layer_density": masks.layer_density()})
        state.metrics["imp_round"] = r

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["round"] = state.epoch // max(1, self.round_epochs)
        state.metrics["density"] = state.masks.masks.density()

    def state_dict(self) -> dict:
        return {"rewind_state": self.rewind_state, "rewind_step": self.rewind_step, "history": self.history,
                "tickets": [dict(t) for t in self.tickets]}

    def load_state_dict(self, state: dict) -> None:
        self.rewind_state = state["rewind_state"]
        self.rewind_step = state["rewind_step"]
        self.history = list(state["history"])
        self.tickets = [Masks(t) for t in state["tickets"]]


@register_schedule("rounds")
@dataclass
class Rounds(Schedule):
    """Prune ``rate`` of the survivors per round, rewinding the weights (IMP) or the learning rate (LRR).

    Attributes:
        rate: fraction of the *surviving* weights pruned per round, in (0, 1) (Frankle & Carbin's
            p = 20 %: keep 80 % per round).
        rewind: ``weights`` (reset the survivors to θ_k, IMP) or ``lr`` (keep the weights, LRR).
        rewind_epoch: the rewind point k in epochs of round 0, for ``rewind = "weights"`` (0 = reset to
            initialisation as in Frankle & Carbin 2019; e.g. 1.4 ≈ iteration 500 of CIFAR ResNet-20 as in
            Frankle et al. 2020); k = round(rewind_epoch · steps_per_epoch) must lie inside one round.
        reset_optimizer: reset momentum / Adam state at every round start.
    """

    rate: float = 0.2
    rewind: str = "weights"
    rewind_epoch: float = 0.0
    reset_optimizer: bool = True

    description = "prune rate of the survivors per round; rewind the weights (IMP) or the learning rate (LRR)"

    def validate(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ConfigError(f"{self.label} pruning rate {self.rate!r} is outside (0, 1); use e.g. "
                              "rate = 0.2 (keep 80 % per round)")
        if self.rewind not in REWIND:
            raise ConfigError(f"{self.label} rewind {self.rewind!r} is unknown; choose 'weights' (IMP) or 'lr' (LRR)")
        if self.rewind_epoch < 0:
            raise ConfigError(f"{self.label} rewind_epoch {self.rewind_epoch} is negative; use 0 (initialisation) "
                              "or a point early in training")
        if self.rewind == "lr" and self.rewind_epoch:
            raise ConfigError(f"{self.label} rewind_epoch applies to rewind = 'weights' only; drop it for "
                              "learning-rate rewinding")

    def check_recipe(self, recipe: Any) -> None:
        if self.rewind == "weights" and self.rewind_epoch >= recipe.epochs:
            raise ConfigError(f"{self.label} rewind_epoch {self.rewind_epoch:g} is beyond one round of training "
                              f"({recipe.epochs} epochs); choose a rewind point below {recipe.epochs}")

    def rewind_steps(self, steps_per_epoch: int) -> int | None:
        """The rewind step k, or None for no weight rewinding (LRR)."""
        return int(round(self.rewind_epoch * steps_per_epoch)) if self.rewind == "weights" else None

    def rounds(self, sparsity: float) -> int:
        """Training rounds: one dense round plus one per pruning step."""
        return len(round_densities(self.rate, 1.0 - float(sparsity))) + 1

    def callbacks(self, pruner, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._cb = _RoundsCallback(self, pruner, round_densities(self.rate, 1.0 - float(sparsity)), allocation)
        return [self._cb]

    def total_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        return recipe_epochs * self.rounds(sparsity)

    def lr_cycle_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        return recipe_epochs

    @property
    def ticket_masks(self) -> list[Masks]:
        """The masks after each pruning step."""
        cb = getattr(self, "_cb", None)
        return list(cb.tickets) if cb is not None else []

    def artifacts(self) -> dict[str, object]:
        """Every round's ticket masks (``ticket_round<r>.pt``) and, with weight rewinding, the rewind weights θ_k."""
        out: dict[str, object] = {f"ticket_round{r + 1}": m for r, m in enumerate(self.ticket_masks)}
        cb = getattr(self, "_cb", None)
        if cb is not None and getattr(cb, "rewind_state", None) is not None:
            out["rewind_weights"] = cb.rewind_state
        return out

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"rounds": cb.rounds, "rewind_step": cb.rewind_step,
                "round_density": [h["density"] for h in cb.history],
                "round_target_density": [h["target_density"] for h in cb.history],
                "round_layer_density": [h["layer_density"] for h in cb.history],
                "round_start_step": [h["step"] for h in cb.history]}
