"""Reparameterisations and optimiser geometries, each combinable with every pruner.

Importing this package registers the built-in reparams.
"""
from reparam.base import REPARAMS, Identity, Reparam, register_reparam

__all__ = ["REPARAMS", "Identity", "Reparam", "register_reparam"]
