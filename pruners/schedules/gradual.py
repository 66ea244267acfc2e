"""``gradual``: the cubic sparsity ramp of Zhu & Gupta (2017), eq. (1).

Starting at step t0 the sparsity is raised every Δt steps following

    s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (nΔt))³,   t ∈ {t0, t0 + Δt, …, t0 + nΔt},

and the pruner's score of the network being trained (|θ| of the merged weights for ``gmp``), under
the run's allocation and nested in the current mask, prunes to reach s_t.  Here t0 = round(start · T)
and t0 + nΔt = round(end · T) for a run of T steps (fractions of training, so one setting scales to
any recipe); the last update lands exactly on t0 + nΔt even when Δt does not divide nΔt, so the
target is reached.  t counts completed optimiser steps: the update "at step t" happens after t
steps.  The network trains on after ``end`` at the final sparsity (Zhu & Gupta stop pruning well
before the end so the network recovers; Gale et al. 2019 use the same scheme).  ``power`` is the
exponent of the ramp (3 in the paper).
"""
from __future__ import annotations

from dataclasses import dataclass

from pruners.allocation import Allocation
from pruners.hooks import Callback, TrainState
from pruners.registry import ConfigError
from pruners.schedules.base import Schedule, register_schedule
from pruners.schedules.helpers import cubic_sparsity


class _GradualCallback(Callback):
    def __init__(self, schedule: "Gradual", pruner, sparsity: float, allocation: Allocation) -> None:
        self.schedule, self.pruner, self.s_f, self.allocation = schedule, pruner, sparsity, allocation
        self.log: list[tuple[int, float, float]] = []   # (t, scheduled sparsity, achieved sparsity)

    def on_start(self, state: TrainState) -> None:
        T = state.total_steps
        self.t0 = int(round(self.schedule.start * T))
        self.t_end = max(self.t0 + 1, int(round(self.schedule.end * T)))
        self._maybe_update(state, 0)

    def is_update_step(self, t: int) -> bool:
        if t < self.t0 or t > self.t_end:
            return False
        return (t - self.t0) % self.schedule.frequency == 0 or t == self.t_end

    def target(self, t: int) -> float:
        s = self.schedule
        return cubic_sparsity(t, s.initial_sparsity, self.s_f, self.t0, self.t_end, s.power)

    def _maybe_update(self, state: TrainState, t: int) -> None:
        if not self.is_update_step(t):
            return
        s_t = self.target(t)
        masks = self.pruner.training_select(state, 1.0 - s_t, self.allocation, within=state.masks.masks)
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


@register_schedule("gradual")
@dataclass
class Gradual(Schedule):
    """Gradual pruning with the cubic ramp (Zhu & Gupta 2017, eq. 1).

    Attributes:
        initial_sparsity: s_i, the sparsity at t0 (0 = start from the dense network).
        start: t0 as a fraction of training.
        end: t0 + nΔt as a fraction of training (> start).
        frequency: Δt, steps between mask updates (> 0).
        power: the ramp's exponent (paper: 3).
    """

    initial_sparsity: float = 0.0
    start: float = 0.1
    end: float = 0.8
    frequency: int = 100
    power: float = 3.0

    description = "Zhu & Gupta's cubic ramp from start to end of training, every frequency steps"

    def validate(self) -> None:
        name = self.label
        if self.frequency <= 0:
            raise ConfigError(f"{name} frequency (ΔT) must be a positive number of steps, got {self.frequency}; "
                              "use e.g. 100")
        if not 0.0 <= self.start < 1.0 or not 0.0 < self.end <= 1.0:
            raise ConfigError(f"{name} start {self.start} / end {self.end} must be fractions of training in [0, 1]")
        if self.end <= self.start:
            raise ConfigError(f"{name} end {self.end} must be after start {self.start}; e.g. start = 0.1, end = 0.8")
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise ConfigError(f"{name} initial_sparsity {self.initial_sparsity} is outside [0, 1); use 0")
        if self.power <= 0:
            raise ConfigError(f"{name} power {self.power} must be > 0; the paper's ramp is 3")

    def callbacks(self, pruner, sparsity: float, allocation: Allocation) -> list[Callback]:
        if self.initial_sparsity > sparsity:
            raise ConfigError(f"{self.label} initial_sparsity {self.initial_sparsity} exceeds the target "
                              f"{sparsity}; lower initial_sparsity")
        self._cb = _GradualCallback(self, pruner, float(sparsity), allocation)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"t0": cb.t0, "t_end": cb.t_end, "updates": len(cb.log),
                "schedule": [[t, s, a] for t, s, a in cb.log]}
