"""The reparam interface (DESIGN.md, "Reparam"): how weights are parameterised or stepped.

A reparam is independent of the pruner.  The training pipeline calls, in order:

1. ``apply(model, masks)`` — install the parameterisation (e.g. θ = M ⊙ m ⊙ w) after the pruner's
   initial masks are known;
2. ``mask_targets(model, masks)`` — which tensors carry each masked weight, so the
   :class:`pruners.MaskEnforcer` keeps them at zero;
3. ``wrap_optimizer(optimizer)`` — add a post-step (HAM) or replace the step (NanoAdam, sign descent);
4. ``callbacks()`` — training hooks (Sign-In's reset, PILoT's α schedule, weight-decay switch-off);
5. ``effective_weights(model)`` — the current θ per prunable name, for sign flips and for pruners
   that recompute masks during training;
6. ``merge(model)`` — fold back to plain weights θ for evaluation, masks, export and graphon analysis.

``compatible(pruner)`` returns a reason string when a pruner × reparam pair cannot work, so grids
are refused before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from pruners.hooks import Callback
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError, Registry


@dataclass
class Reparam:
    """Base class and the identity reparam (``none``)."""

    registry_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: What the reparam changes, for stacks (``reparam.stack``): "parameterisation" (the weights),
    #: "geometry" (the optimiser step) or "weight decay"; "" (undeclared) cannot be stacked.
    kind: ClassVar[str] = ""
    #: Part of the run id: bump it when a change (a new default, a fix) changes what the reparam computes.
    version: ClassVar[str] = "1"

    def validate(self) -> None:
        """Check hyperparameter ranges; raise ConfigError with a one-line fix."""

    def compatible(self, pruner: object) -> str | None:
        """None when the pair works, else the reason it is refused."""
        return None

    def apply(self, model: nn.Module, masks: Masks) -> None:
        """Install the parameterisation on ``model`` (identity: nothing)."""

    def mask_targets(self, model: nn.Module, masks: Masks) -> dict[str, Sequence[nn.Parameter]]:
        """Per mask name, the parameters that must be masked (identity: the weight itself)."""
        params = prunable_parameters(model)
        return {n: [params[n]] for n in masks}

    def effective_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The current θ for every prunable name (identity: the weights)."""
        return {n: p.detach() for n, p in prunable_parameters(model).items()}

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        return optimizer

    def callbacks(self) -> list[Callback]:
        return []

    def merge(self, model: nn.Module) -> None:
        """Fold back to plain weights θ (identity: nothing)."""


class OptimizerWrapper:
    """Base of optimiser wrappers: everything not overridden is the base optimiser's.

    ``param_groups``, ``state``, ``defaults``, ``zero_grad``, ``state_dict``, ``add_param_group`` are the
    base optimiser's, so learning-rate schedulers (built on ``base_optimizer``), the enforcer's state
    resets and the training loop see one optimiser.
    """

    def __init__(self, base: torch.optim.Optimizer) -> None:
        self.base_optimizer = base

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base_optimizer.param_groups

    @property
    def state(self) -> Any:
        return self.base_optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:
        return self.base_optimizer.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state)

    def add_param_group(self, group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(group)

    def __getattr__(self, name: str) -> Any:
        if name == "base_optimizer":
            raise AttributeError(name)
        return getattr(self.base_optimizer, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_optimizer!r})"


REPARAMS: Registry[type[Reparam]] = Registry("reparam", entry_point_group="sparsebench.reparams")


def register_reparam(name: str, *, origin: str = "built-in"):
    """Class decorator registering a :class:`Reparam` subclass under ``name``."""

    def deco(cls: type[Reparam]) -> type[Reparam]:
        if not (isinstance(cls, type) and issubclass(cls, Reparam)):
            raise ConfigError(f"reparam {name!r} ({cls!r}) is not a subclass of reparam.Reparam; derive from it")
        REPARAMS.add(name, cls, origin=origin)
        return cls

    return deco


@register_reparam("none")
@dataclass
class Identity(Reparam):
    """Plain weights and the recipe's optimiser."""

    description = "no reparameterisation"


