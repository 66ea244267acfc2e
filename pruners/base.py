"""The pruner interface: score × allocation × schedule (DESIGN.md, "Pruner").

A pruner is a dataclass whose fields are its hyperparameters, registered by name::

    @register_pruner("snip")
    @dataclass
    class SNIP(Pruner):
        batches_per_class: int = 10
        def scores(self, model, ctx): ...

*Score*: :meth:`Pruner.scores` returns, per prunable parameter, a tensor of the same shape where a
higher value means keep.  *Allocation* (``pruners.allocation``) spreads the target sparsity over
layers and keeps the highest scores (:meth:`Pruner.select`).  *Schedule* (``pruners.schedules``)
decides when masks are chosen: ``at_init`` by default, any registered schedule when a grid names one
(``schedule = "gradual"``), or a preset's fixed one (``gmp`` = magnitude × gradual, ``pruners.presets``).
:meth:`initial_masks`, :meth:`callbacks`, :meth:`total_epochs` … hand over to the pruner's schedule;
a pruner that learns its masks (STR, CS) or a plugin with a mechanism of its own overrides
:meth:`initial_masks` / :meth:`callbacks` instead and then takes no schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from pruners.allocation import Allocation
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError, Registry
from pruners.schedules import SCHEDULES, Schedule, nested_masks, plain_view

FAMILIES = ("dense", "pai", "dense-to-sparse", "dst", "continuous")


@dataclass
class Pruner:
    """Base class of every pruner.

    Class attributes (not hyperparameters):
        family: one of FAMILIES, used by the leaderboard's filters.
        needs_data: scores use training batches (refused on tasks without data).
        uses_sparsity: False for ``dense`` (grids run it once, at sparsity 0).
        learned_sparsity: the final sparsity comes from training (STR, CS); reported as such.
        description / paper / url: metadata shown in listings and on the leaderboard.
    """

    registry_name: ClassVar[str] = ""
    family: ClassVar[str] = "pai"
    needs_data: ClassVar[bool] = False
    uses_sparsity: ClassVar[bool] = True
    learned_sparsity: ClassVar[bool] = False
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    url: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    author: ClassVar[str] = "sparsebench"

    #: The schedule this pruner runs when the grid names none (a preset's fixed one, e.g. ``gradual``).
    schedule_preset: ClassVar[str] = "at_init"
    #: The name of the score a preset uses (``magnitude`` for gmp); a scoring pruner's own name.
    score_name: ClassVar[str] = ""

    def validate(self) -> None:
        """Check hyperparameter ranges; raise ConfigError with a one-line fix."""

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """Per prunable parameter, higher = keep.  Must not change the model."""
        raise NotImplementedError(f"{type(self).__name__} does not define scores()")

    # --- score × allocation ---------------------------------------------------------------------
    def select(self, model: nn.Module, ctx: PruneContext, density: float, allocation: Allocation,
               within: Mapping[str, torch.Tensor] | None = None) -> Masks:
        """Masks keeping ``density`` of the weights with the highest scores under ``allocation``,
        nested in ``within`` when given (weights pruned there stay pruned).  SynFlow overrides it
        with its iterative rounds."""
        return nested_masks(checked_scores(self, self.scores(model, ctx), model), density, allocation, within)

    def training_scores(self, state: TrainState) -> dict[str, torch.Tensor]:
        """Scores of the network being trained (a drop-and-grow's drop, a "pruner" grow): :meth:`scores`
        of its plain view (``pruners.schedules.plain_view``: the model, or a copy with the reparam folded)."""
        model = plain_view(state)
        return checked_scores(self, self.scores(model, state.ctx), model)

    def training_select(self, state: TrainState, density: float, allocation: Allocation,
                        within: Mapping[str, torch.Tensor] | None = None) -> Masks:
        """:meth:`select` on the network being trained (schedules that re-prune during training)."""
        return self.select(plain_view(state), state.ctx, density, allocation, within)

    # --- schedule ---------------------------------------------------------------------------------
    def default_schedule(self) -> Schedule:
        """The schedule when the grid names none: ``at_init`` (presets return their own)."""
        return SCHEDULES.get("at_init")()

    @property
    def mask_schedule(self) -> Schedule:
        """The bound schedule (``pruners.schedules.bind_schedule``), else :meth:`default_schedule`."""
        if self.__dict__.get("_schedule") is None:
            self.__dict__["_schedule"] = self.default_schedule()
        return self.__dict__["_schedule"]

    @mask_schedule.setter
    def mask_schedule(self, value: Schedule) -> None:
        self.__dict__["_schedule"] = value

    @property
    def own_schedule(self) -> bool:
        """True when the pruner overrides :meth:`initial_masks` or :meth:`callbacks` (STR, CS, some plugins)."""
        cls = type(self)
        return cls.initial_masks is not Pruner.initial_masks or cls.callbacks is not Pruner.callbacks

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        """Masks applied before training (the schedule's: the at-init prune, dense for gmp …)."""
        density_of(sparsity)   # a sparsity outside [0, 1) is a ConfigError whatever the schedule
        return self.mask_schedule.initial_masks(self, model, ctx, sparsity, allocation)

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        """Training callbacks of the schedule (none for pruning at initialisation)."""
        return self.mask_schedule.callbacks(self, sparsity, allocation)

    def check_recipe(self, recipe: Any) -> None:
        """Refuse a recipe the schedule cannot be laid out on (IMP's rewind point, AC/DC's phases)."""
        self.mask_schedule.check_recipe(recipe)

    def artifacts(self) -> dict[str, object]:
        """Files to keep in the run folder after training: name → :class:`Masks` (saved as
        ``<name>.pt`` + sparsity report) or a dict of tensors (saved with ``torch.save``).
        IMP / LRR keep each round's ticket masks and the rewind weights this way."""
        return self.mask_schedule.artifacts()

    def extra_results(self) -> dict:
        """Method-specific results for result.json's ``extra`` (the schedule's log)."""
        return self.mask_schedule.extra_results()

    def total_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        """Epochs the whole run trains for (IMP / LRR: rounds × the recipe's epochs)."""
        return self.mask_schedule.total_epochs(recipe_epochs, sparsity)

    def lr_cycle_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        """Length of one learning-rate schedule cycle; the schedule restarts every cycle (IMP / LRR
        rounds rewind the learning rate).  Default: one cycle over the whole run."""
        return self.mask_schedule.lr_cycle_epochs(recipe_epochs, sparsity)

    @property
    def run_family(self) -> str:
        """The leaderboard family of a run: the schedule's (a scoring pruner under ``gradual`` is
        dense-to-sparse) or, at initialisation, the pruner's own."""
        return self.mask_schedule.family or self.family


def checked_scores(pruner: Pruner, scores: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Validate a score dict: exactly the prunable parameters, right shapes, finite values."""
    name = pruner.registry_name or type(pruner).__name__
    params = prunable_parameters(model)
    if not isinstance(scores, Mapping):
        raise ConfigError(f"pruner {name!r} returned {type(scores).__name__} from scores(); return a dict "
                          "mapping parameter names to tensors")
    missing = [n for n in params if n not in scores]
    extra = [n for n in scores if n not in params]
    if missing or extra:
        raise ConfigError(f"pruner {name!r} scores do not match the prunable parameters "
                          f"(missing {missing[:2]}, unexpected {extra[:2]}); score every prunable weight")
    out = {}
    for n, p in params.items():
        s = scores[n]
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != tuple(p.shape):
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ConfigError(f"pruner {name!r} scored {n!r} with shape {shape}, expected {tuple(p.shape)}")
        if not bool(torch.isfinite(s).all()):
            raise ConfigError(f"pruner {name!r} produced NaN or inf scores for {n!r}; scores must be finite")
        out[n] = s.detach()
    return out


PRUNERS: Registry[type[Pruner]] = Registry("pruner", entry_point_group="sparsebench.pruners")


def register_pruner(name: str, *, origin: str = "built-in"):
    """Class decorator registering a :class:`Pruner` subclass under ``name``."""

    def deco(cls: type[Pruner]) -> type[Pruner]:
        if not (isinstance(cls, type) and issubclass(cls, Pruner)):
            raise ConfigError(f"pruner {name!r} ({cls!r}) is not a subclass of pruners.Pruner; derive from it")
        if cls.family not in FAMILIES:
            raise ConfigError(f"pruner {name!r} has family {cls.family!r}; use one of {', '.join(FAMILIES)}")
        PRUNERS.add(name, cls, origin=origin)
        return cls

    return deco


def density_of(sparsity: float) -> float:
    if not (isinstance(sparsity, (int, float)) and 0.0 <= sparsity < 1.0) or math.isnan(sparsity):
        raise ConfigError(f"sparsity {sparsity!r} is outside [0, 1); use a fraction such as 0.9 for 90 %")
    return 1.0 - float(sparsity)
