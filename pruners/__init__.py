"""Pruners: masks and everything that decides them (scores, layer allocation, schedules).

Import names: ``Masks``, ``Pruner``, ``register_pruner``, ``PRUNERS``, ``ALLOCATIONS``,
``register_allocation``, ``SCHEDULES``, ``Schedule``, ``register_schedule``, ``MaskEnforcer``, ``Callback``, ``PruneContext``, ``TrainState``.
Importing this package registers the built-in pruners.
"""
from pruners.registry import ConfigError, Registry
from pruners import plugins as _plugins  # noqa: F401  (installs plugin discovery in every registry)
from pruners.masks import Masks, prunable_parameters
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.allocation import ALLOCATIONS, Allocation, register_allocation
from pruners.enforce import MaskEnforcer
from pruners.base import PRUNERS, Pruner, register_pruner
from pruners.schedules import SCHEDULES, Schedule, register_schedule
from pruners import basic as _basic  # noqa: F401  (registers dense, random, magnitude)
from pruners import presets as _presets  # noqa: F401  (oneshot, gmp, imp, lrr, acdc, set, rigl)
from pruners import str_pruner as _str, cs as _cs  # noqa: F401  (learned sparsity: str, cs)
from pruners import snip as _snip  # noqa: F401  (registers snip)
from pruners import grasp as _grasp  # noqa: F401  (registers grasp)
from pruners import synflow as _synflow  # noqa: F401  (registers synflow)

__all__ = [
    "ALLOCATIONS", "Allocation", "Callback", "ConfigError", "MaskEnforcer", "Masks", "PRUNERS",
    "PruneContext", "Pruner", "Registry", "SCHEDULES", "Schedule", "TrainState", "prunable_parameters",
    "register_allocation", "register_pruner", "register_schedule",
]
