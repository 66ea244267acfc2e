"""Weight-decay schedules (Jacobs, Zhou, Burkholz, *Mirror, Mirror of the Flow: How Does
Regularization Shape Implicit Bias?*, ICML 2025, arXiv 2504.12883; PAPERS.md §7).

Explicit regularisation α_t on top of a reparameterisation gives a time-dependent mirror flow whose
potential depends on the accumulated strength ∫α; the change is stored after the decay is switched
off, and switching it off eventually guarantees convergence.  This reparam keeps the weights plain
and multiplies the recipe's ``weight_decay`` (per parameter group) by a factor at every step:

* ``constant``: factor 1;
* ``switch_off``: factor 1 until ``t_off``, then 0 — ``t_off`` is a fraction of training
  (``unit = "fraction"``, compared with step / total_steps) or an epoch (``unit = "epoch"``: off from the
  start of epoch ``t_off``, 0-based);
* any schedule as a Python callable: ``WdSchedule.from_callable(fn)`` with ``fn(progress) -> factor``
  (progress = step / total_steps in [0, 1)); Python API only (a callable has no spec identity).

The accumulated dose ``Σ_k η_k · wd_k`` (η_k the step's learning rate, wd_k the weight decay it used,
group 0) is logged as ``wd_dose`` in the per-epoch metrics, with the current ``weight_decay``.  In the
convention of PAPERS.md §1 (SGD weight_decay = 2α on m and w) ∫α = wd_dose / 2, and for x = m ⊙ w,
m² − w² = γ₀ exp(−2 · wd_dose).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from pruners.hooks import Callback, TrainState
from pruners.registry import ConfigError
from reparam.base import Reparam, register_reparam

WD_SCHEDULES = ("constant", "switch_off")
UNITS = ("fraction", "epoch")


class WeightDecaySchedule(Callback):
    """Sets ``group["weight_decay"] = base · factor`` before every step and accumulates the dose."""

    def __init__(self, factor: Callable[[TrainState], float]) -> None:
        self.factor = factor
        self.base: list[float] = []
        self.dose = 0.0

    def on_start(self, state: TrainState) -> None:
        self.base = [float(g.get("weight_decay", 0.0)) for g in state.optimizer.param_groups]

    def before_step(self, state: TrainState) -> None:
        f = float(self.factor(state))
        groups = state.optimizer.param_groups
        for g, b in zip(groups, self.base):
            g["weight_decay"] = b * f
        self.dose += float(groups[0]["lr"]) * float(groups[0]["weight_decay"])

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["wd_dose"] = self.dose
        state.metrics["weight_decay"] = float(state.optimizer.param_groups[0]["weight_decay"])

    def state_dict(self) -> dict:
        return {"dose": self.dose, "base": self.base}

    def load_state_dict(self, state: dict) -> None:
        self.dose, self.base = float(state["dose"]), list(state["base"])


@register_reparam("wd_schedule")
@dataclass
class WdSchedule(Reparam):
    """Plain weights; the recipe's weight decay follows a schedule (constant or switched off at t_off)."""

    kind = "weight decay"

    description = "weight-decay schedule: constant or switched off at t_off; logs the dose Σ η·wd"
    paper = ("Jacobs, Zhou, Burkholz. Mirror, Mirror of the Flow: How Does Regularization Shape Implicit "
             "Bias? ICML 2025 (arXiv 2504.12883)")

    schedule: str = "switch_off"
    t_off: float = 0.5
    unit: str = "fraction"
    fn: Callable[[float], float] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_callable(cls, fn: Callable[[float], float]) -> "WdSchedule":
        """A schedule given as ``fn(progress) -> factor of the recipe's weight decay`` (Python API)."""
        if not callable(fn):
            raise ConfigError("WdSchedule.from_callable needs a callable fn(progress) -> factor")
        obj = cls(schedule="constant")
        obj.fn = fn
        return obj

    def validate(self) -> None:
        if self.schedule not in WD_SCHEDULES:
            raise ConfigError(f"wd_schedule schedule {self.schedule!r} is unknown; choose one of "
                              f"{', '.join(WD_SCHEDULES)} (or WdSchedule.from_callable in Python)")
        if self.unit not in UNITS:
            raise ConfigError(f"wd_schedule unit {self.unit!r} is unknown; choose one of {', '.join(UNITS)}")
        if not (isinstance(self.t_off, (int, float)) and math.isfinite(self.t_off) and self.t_off >= 0):
            raise ConfigError(f"wd_schedule t_off must be >= 0, got {self.t_off!r}")
        if self.unit == "fraction" and self.t_off > 1:
            raise ConfigError(f"wd_schedule t_off = {self.t_off} is a fraction of training and must be <= 1; "
                              "use unit = \"epoch\" for an epoch number")

    def check_recipe(self, recipe: object) -> None:
        epochs = int(getattr(recipe, "epochs"))
        if self.schedule == "switch_off" and self.unit == "epoch" and self.t_off > epochs:
            raise ConfigError(f"wd_schedule t_off = epoch {self.t_off:g} is after the end of training ({epochs} "
                              f"epochs); set t_off <= {epochs}")

    def factor(self, state: TrainState) -> float:
        if self.fn is not None:
            return float(self.fn(state.progress))
        if self.schedule == "constant":
            return 1.0
        if self.unit == "fraction":
            return 1.0 if state.progress < self.t_off else 0.0
        return 1.0 if state.epoch < self.t_off else 0.0

    def callbacks(self) -> list[Callback]:
        return [WeightDecaySchedule(self.factor)]
