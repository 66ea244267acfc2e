"""sparsebench-force: the FORCE pruner (de Jorge et al., ICLR 2021) as an installable sparsebench plugin.

Installed, it is found through the entry point ``force`` in group ``sparsebench.pruners``; without
installing, pass ``--plugin sparsebench_force.force`` with ``src`` on ``PYTHONPATH``.
Importing this package does not register anything: registration happens when sparsebench loads
the entry point (or the ``--plugin`` target), so the pruner's origin is recorded correctly.
"""
__version__ = "0.1.0"
