"""Reparameterisations and optimiser geometries, each combinable with every pruner.

Importing this package registers the built-in reparams.
"""
from reparam.base import REPARAMS, Identity, Reparam, register_reparam

__all__ = ["REPARAMS", "Identity", "Reparam", "register_reparam"]
from reparam import signin as _signin  # noqa: F401,E402  (registers signin)
from reparam import pilot as _pilot  # noqa: F401,E402  (registers pilot)
from reparam import spred as _spred  # noqa: F401,E402  (registers spred)
from reparam import ham as _ham  # noqa: F401,E402  (registers ham)
from reparam import nanoadam as _nanoadam  # noqa: F401,E402  (registers nanoadam)
from reparam import steepest as _steepest  # noqa: F401,E402  (registers steepest)
from reparam import wd_schedule as _wd_schedule  # noqa: F401,E402  (registers wd_schedule)
