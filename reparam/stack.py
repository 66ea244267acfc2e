"""Stacks of reparameterisations (issue 19): a parameterisation, an optimiser geometry and a weight-decay
schedule in one run, as the papers pair them — Sign-In or PILoT with weight-decay switch-off (Mirror
Mirror), HAM with weight-decay switch-off, a parameterisation under sign descent (Never Saddle).

A stack is named by its members joined with ``+`` in a fixed order — parameterisation, geometry,
weight decay — whatever order the grid lists them in (``["wd_schedule", "signin"]`` is
``signin+wd_schedule``), and its hyperparameters are a table per member
(``{"signin": {...}, "wd_schedule": {...}}``).  At most one member of each :data:`KINDS`; a reparam
whose class declares no ``kind`` (a plugin that did not say what it is) cannot be stacked.

How the members combine: the parameterisation installs the weights (``apply``, ``mask_targets``,
``effective_weights``, ``merge``); ``wrap_optimizer`` is applied member by member in stack order (the
geometry replaces or wraps the recipe's optimiser); the callbacks of all members run, in stack order;
a member's ``compatible`` / ``check_recipe`` refusal refuses the stack.  A single name is a plain reparam.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from pruners.hooks import Callback
from pruners.masks import Masks
from pruners.registry import ConfigError, build_config, config_dict, did_you_mean
from reparam.base import REPARAMS, Reparam

#: The kinds a stack may hold, one of each, in stack order.
KINDS = ("parameterisation", "geometry", "weight decay")
SEP = "+"


def members(name: str) -> list[str]:
    """The reparam names of ``name`` (one for a plain reparam)."""
    return name.split(SEP)


def canonical(names: str | Sequence[str]) -> str:
    """The stack's name in stack order; ConfigError for an unknown member, two of one kind, or a member
    that cannot be stacked."""
    names = members(names) if isinstance(names, str) else list(names)
    if len(names) == 1:
        REPARAMS.get(names[0])
        return names[0]
    if len(set(names)) != len(names):
        raise ConfigError(f"reparam stack {names} names a reparam twice; list each once")
    kinds = {}
    for n in names:
        cls = REPARAMS.get(n)
        if cls.kind not in KINDS:
            raise ConfigError(f"reparam {n!r} cannot be stacked: its class declares no kind (one of "
                              f"{', '.join(KINDS)}); use it alone, or set kind on the class")
        if cls.kind in kinds:
            raise ConfigError(f"reparam stack {names} holds two of kind {cls.kind!r} ({kinds[cls.kind]!r} and {n!r}); "
                              f"a stack takes at most one parameterisation, one geometry and one weight-decay schedule")
        kinds[cls.kind] = n
    return SEP.join(kinds[k] for k in KINDS if k in kinds)


def build_reparam(name: str, args: Mapping[str, Any] | None = None) -> Reparam:
    """The reparam object of ``name`` (plain or a stack) with ``args`` (a stack: a table per member)."""
    names = members(name)
    if len(names) == 1:
        return build_config(REPARAMS.get(name), dict(args or {}), f"reparam {name!r}")
    if canonical(names) != name:
        raise ConfigError(f"reparam stack {name!r} is not in stack order; write it as {canonical(names)!r}")
    args = dict(args or {})
    for key, value in args.items():
        if key not in names:
            raise ConfigError(f"reparam stack {name!r} args name {key!r}, not a member{did_you_mean(key, names)}; "
                              f"give one table per member, e.g. args = {{ {names[0]} = {{ ... }} }}")
        if not isinstance(value, Mapping):
            raise ConfigError(f"reparam stack {name!r} args.{key} must be a table of {key}'s hyperparameters")
    return Stack([build_config(REPARAMS.get(n), dict(args.get(n, {})), f"reparam {n!r}") for n in names])


def reparam_config(obj: Reparam) -> dict[str, Any]:
    """What spec.json records for the reparam: its fields, or a table of fields per stack member."""
    if isinstance(obj, Stack):
        return {p.registry_name: config_dict(p) for p in obj.parts}
    return config_dict(obj)


def reparam_version(name: str) -> str:
    """The class version (``"2"``), or the members' joined in stack order (``"1+2"``)."""
    return SEP.join(str(REPARAMS.get(n).version) for n in members(name))


def hashed_args(name: str, args: Mapping[str, Any], non_default) -> dict[str, Any]:
    """``args`` without the hyperparameters at their class defaults (per member for a stack)."""
    names = members(name)
    if len(names) == 1:
        return non_default(args, REPARAMS.get(name))
    out = {n: non_default(args.get(n, {}), REPARAMS.get(n)) for n in names}
    return {n: v for n, v in out.items() if v}


class Stack(Reparam):
    """Several reparams of different kinds acting together (module docstring)."""

    description = "a stack of a parameterisation, an optimiser geometry and a weight-decay schedule"

    def __init__(self, parts: Sequence[Reparam]) -> None:
        self.parts = list(parts)
        self.registry_name = SEP.join(p.registry_name for p in self.parts)
        params = [p for p in self.parts if p.kind == "parameterisation"]
        self.weights: Reparam = params[0] if params else Reparam()

    def __repr__(self) -> str:
        return f"Stack({self.parts!r})"

    def compatible(self, pruner: object) -> str | None:
        return next((r for r in (p.compatible(pruner) for p in self.parts) if r), None)

    def check_recipe(self, recipe: Any) -> None:
        for p in self.parts:
            check = getattr(p, "check_recipe", None)
            if check is not None:
                check(recipe)

    def apply(self, model: nn.Module, masks: Masks) -> None:
        self.weights.apply(model, masks)

    def mask_targets(self, model: nn.Module, masks: Masks) -> dict[str, Sequence[nn.Parameter]]:
        return self.weights.mask_targets(model, masks)

    def effective_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return self.weights.effective_weights(model)

    def merge(self, model: nn.Module) -> None:
        self.weights.merge(model)

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        for p in self.parts:
            optimizer = p.wrap_optimizer(optimizer)
        return optimizer

    def callbacks(self) -> list[Callback]:
        return [cb for p in self.parts for cb in p.callbacks()]
