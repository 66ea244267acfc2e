"""The schedule axis of a pruner: score × allocation × **schedule** (DESIGN.md, "Pruner"; issue 19).

A schedule decides *when* masks are chosen and how training around them is laid out; the pruner's
score decides *which* weights a mask keeps and the allocation *how many per layer*.  A schedule is a
dataclass of its hyperparameters, registered by name (``@register_schedule("gradual")``), in the
manner of JaxPruner's ``sparsity_schedules``.  It asks the pruner for masks through two calls only:

- ``pruner.select(model, ctx, density, allocation, within)`` before training (at initialisation);
- ``pruner.training_select(state, density, allocation, within)`` during training (the pruner scores
  the network being trained: |θ| of the merged weights for magnitude, a forward-backward of the plain
  view for SNIP / GraSP / SynFlow), and ``pruner.training_scores(state)`` for a drop-and-grow's drop
  and its "pruner" grow criterion.

Each schedule keeps its per-run state (the callback it made, its log) and reports it through
:meth:`Schedule.extra_results` and :meth:`Schedule.artifacts`.  Built-in pruner names such as ``gmp``
or ``rigl`` are presets: a score with a fixed schedule (``pruners.presets``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from pruners.allocation import Allocation
from pruners.hooks import Callback, PruneContext
from pruners.masks import Masks
from pruners.registry import ConfigError, Registry

if TYPE_CHECKING:
    from pruners.base import Pruner


@dataclass
class Schedule:
    """Base class of every schedule.

    Class attributes (not hyperparameters):
        family: the leaderboard family of a run under this schedule (``None``: the pruner's own).
        rescores: the schedule scores the network during training (a pruner must support it).
        description: shown by ``sparsebench list schedules``.
    """

    registry_name: ClassVar[str] = ""
    family: ClassVar[str | None] = "dense-to-sparse"
    rescores: ClassVar[bool] = True
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"

    @property
    def label(self) -> str:
        """The name messages use: the preset's pruner name (``gmp``) or the schedule's (``gradual``)."""
        return self.__dict__.get("_label") or self.registry_name

    def validate(self) -> None:
        """Check hyperparameter ranges; raise ConfigError with a one-line fix."""

    def compatible(self, pruner: "Pruner") -> str | None:
        """None when ``pruner``'s score can run under this schedule, else the reason it cannot."""
        return None

    def check_recipe(self, recipe: Any) -> None:
        """Refuse a recipe the schedule cannot be laid out on (ConfigError)."""

    def initial_masks(self, pruner: "Pruner", model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        """The masks training starts from (default: dense, all ones)."""
        return Masks.ones(model)

    def callbacks(self, pruner: "Pruner", sparsity: float, allocation: Allocation) -> list[Callback]:
        """The training callbacks that change the masks (default: none)."""
        return []

    def total_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        """Epochs the whole run trains for."""
        return recipe_epochs

    def lr_cycle_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        """Length of one learning-rate cycle (the schedule restarts every cycle)."""
        return self.total_epochs(recipe_epochs, sparsity)

    def artifacts(self) -> dict[str, object]:
        """Files to keep in the run folder (see ``Pruner.artifacts``)."""
        return {}

    def extra_results(self) -> dict:
        """The schedule's log for result.json's ``extra``."""
        return {}


SCHEDULES: Registry[type[Schedule]] = Registry("schedule", entry_point_group="sparsebench.schedules")


def register_schedule(name: str, *, origin: str = "built-in"):
    """Class decorator registering a :class:`Schedule` subclass under ``name``."""

    def deco(cls: type[Schedule]) -> type[Schedule]:
        if not (isinstance(cls, type) and issubclass(cls, Schedule)):
            raise ConfigError(f"schedule {name!r} ({cls!r}) is not a subclass of pruners.Schedule; derive from it")
        SCHEDULES.add(name, cls, origin=origin)
        return cls

    return deco
