"""Executors: where runs execute — local process pool, Ray tasks, Slurm job arrays (submitit).

Importing this package registers all three; Ray and submitit are imported only when their executor
runs (extras ``sparsebench[ray]`` / ``sparsebench[slurm]``).
"""
from benchmark.executors.base import EXECUTORS, Executor
from benchmark.executors.local import LocalExecutor
from benchmark.executors.ray import RayExecutor
from benchmark.executors.slurm import SlurmExecutor

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "SlurmExecutor"]
