"""The pruner interface: score × allocation × schedule (DESIGN.md, "Pruner").

A pruner is a dataclass whose fields are its hyperparameters, registered by name::

    @register_pruner("snip")
    @dataclass
    class SNIP(Pruner):
        batches_per_class: int = 10
        def scores(self, model, ctx): ...

*Score*: :meth:`Pruner.scores` returns, per prunable parameter, a tensor of the same shape where a
higher value means keep.  *Allocation* (``pruners.allocation``) spreads the target sparsity over
layers and keeps the highest scores.  *Schedule*: at-init pruners are done after
:meth:`Pruner.initial_masks`; dense-to-sparse and dynamic pruners also return training callbacks
from :meth:`Pruner.callbacks` that change the masks during training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch
from torch import nn

from pruners.allocation import Allocation
from pruners.hooks import Callback, PruneContext
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError, Registry

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

    def validate(self) -> None:
        """Check hyperparameter ranges; raise ConfigError with a one-line fix."""

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """Per prunable parameter, higher = keep.  Must not change the model."""
        raise NotImplementedError(f"{type(self).__name__} does not define scores()")

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        """Masks applied before training (the at-init step); default: score once, allocate."""
        return allocation.masks(checked_scores(self, self.scores(model, ctx), model), 1.0 - sparsity)

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        """Training callbacks of the schedule (none for pruning at initialisation)."""
        return []

    def artifacts(self) -> dict[str, object]:
        """Files to keep in the run folder after training: name → :class:`Masks` (saved as
        ``<name>.pt`` + sparsity report) or a dict of tensors (saved with ``torch.save``).
        IMP / LRR keep each round's ticket masks and the rewind weights this way."""
        return {}

    def total_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        """Epochs the whole run trains for (IMP / LRR: rounds × the recipe's epochs)."""
        return recipe_epochs

    def lr_cycle_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        """Length of one learning-rate schedule cycle; the schedule restarts every cycle (IMP / LRR
        rounds rewind the learning rate).  Default: one cycle over the whole run."""
        return self.total_epochs(recipe_epochs, sparsity)


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
