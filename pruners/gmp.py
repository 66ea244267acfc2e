"""Gradual magnitude pruning (GMP) with the cubic schedule of Zhu & Gupta (2017).

Zhu & Gupta, "To prune, or not to prune", eq. (1): starting at step t0 the sparsity is raised every
Δt steps following

    s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (nΔt))³,   t ∈ {t0, t0 + Δt, …, t0 + nΔt},

and the weights with the smallest |θ| (of the merged weights, under the run's allocation, nested in
the current mask) are pruned to reach s_t.  Here t0 = round(start · T) and t0 + nΔt =
round(end · T) for a run of T steps (fractions of training, so one setting scales to any recipe);
the last update lands exactly on t0 + nΔt even when Δt does not divide nΔt, so the target is
reached.  t counts completed optimiser steps: the update "at step t" happens after t steps.  The
network trains on after ``end`` at the final sparsity (Zhu & Gupta stop pruning well before the end
so the network recovers; Gale et al. 2019 use the same scheme).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from pruners.allocation import Allocation
from pruners.base import Pruner, density_of, register_pruner
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks
from pruners.registry import ConfigError
from pruners.schedules import cubic_sparsity, effective_weights, magnitude_masks


class _GMPCallback(Callback):
    def __init__(self, pruner: "GMP", sparsity: float, allocation: Allocation) -> None:
        self.pruner, self.s_f, self.allocation = pruner, sparsity, allocation
        self.log: list[tuple[int, float, float]] = []   # (t, scheduled sparsity, achieved sparsity)

    def on_start(self, state: TrainState) -> None:
        T = state.total_steps
        self.t0 = int(round(self.pruner.start * T))
        self.t_end = max(self.t0 + 1, int(round(self.pruner.end * T)))
        self._maybe_update(state, 0)

    def is_update_step(self, t: int) -> bool:
        if t < self.t0 or t > self.t_end:
            return False
        return (t - self.t0) % self.pruner.frequency == 0 or t == self.t_end

    def target(self, t: int) -> float:
        return cubic_sparsity(t, self.pruner.initial_sparsity, self.s_f, self.t0, self.t_end)

    def _maybe_update(self, state: TrainState, t: int) -> None:
        if not self.is_update_step(t):
            return
        s_t = self.target(t)
        masks = magnitude_masks(effective_weights(state), 1.0 - s_t, self.allocation, within=state.masks.masks)
        state.masks.update(masks, state.optimizer)
        self.log.append((t, s_t, masks.sparsity()))

    def after_step(self, state: TrainState) -> None:
        self._maybe_update(state, state.step + 1)

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["sparsity"] = state.masks.masks.sparsity()

    def state_dict(self) -> dict:
        return {"log": self.log}

    def load_state_dict(self, state: dict) -> None:
        self.log = [tuple(x) for x in state["log"]]


@register_pruner("gmp")
@dataclass
class GMP(Pruner):
    """Gradual magnitude pruning, cubic schedule (Zhu & Gupta 2017, eq. 1).

    Attributes:
        initial_sparsity: s_i, the sparsity at t0 (0 = start from the dense network).
        start: t0 as a fraction of training.
        end: t0 + nΔt as a fraction of training (> start).
        frequency: Δt, steps between mask updates (> 0).
    """

    initial_sparsity: float = 0.0
    start: float = 0.1
    end: float = 0.8
    frequency: int = 100

    family = "dense-to-sparse"
    description = "gradual magnitude pruning with the cubic schedule"
    paper = "Zhu & Gupta, 'To prune, or not to prune', 2017 (ICLR-W 2018)"
    url = "https://arxiv.org/abs/1710.01878"

    def validate(self) -> None:
        if self.frequency <= 0:
            raise ConfigError(f"gmp frequency (ΔT) must be a positive number of steps, got {self.frequency}; "
                              "use e.g. 100")
        if not 0.0 <= self.start < 1.0 or not 0.0 < self.end <= 1.0:
            raise ConfigError(f"gmp start {self.start} / end {self.end} must be fractions of training in [0, 1]")
        if self.end <= self.start:
            raise ConfigError(f"gmp end {self.end} must be after start {self.start}; e.g. start = 0.1, end = 0.8")
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise ConfigError(f"gmp initial_sparsity {self.initial_sparsity} is outside [0, 1); use 0")

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        return Masks.ones(model)

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        density_of(sparsity)
        if self.initial_sparsity > sparsity:
            raise ConfigError(f"gmp initial_sparsity {self.initial_sparsity} exceeds the target {sparsity}; "
                              "lower initial_sparsity")
        self._cb = _GMPCallback(self, float(sparsity), allocation)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"t0": cb.t0, "t_end": cb.t_end, "updates": len(cb.log),
                "schedule": [[t, s, a] for t, s, a in cb.log]}
