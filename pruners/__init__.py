"""Pruners: masks and everything that decides them (scores, layer allocation, schedules).

Import names: ``Masks``, ``Pruner``, ``register_pruner``, ``PRUNERS``, ``ALLOCATIONS``,
``register_allocation``, ``MaskEnforcer``, ``Callback``, ``PruneContext``, ``TrainState``.
Importing this package registers the built-in pruners.
"""
from pruners.registry import ConfigError, Registry
from pruners.masks import Masks, prunable_parameters
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.allocation import ALLOCATIONS, Allocation, register_allocation
from pruners.enforce import MaskEnforcer
from pruners.base import PRUNERS, Pruner, register_pruner
from pruners import basic as _basic  # noqa: F401  (registers dense, random, magnitude)

__all__ = [
    "ALLOCATIONS", "Allocation", "Callback", "ConfigError", "MaskEnforcer", "Masks", "PRUNERS",
    "PruneContext", "Pruner", "Registry", "TrainState", "prunable_parameters", "register_allocation",
    "register_pruner",
]
