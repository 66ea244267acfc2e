"""Executors: where runs execute (local process pool; Ray and Slurm in their own modules)."""
from benchmark.executors.base import EXECUTORS, Executor
from benchmark.executors.local import LocalExecutor

__all__ = ["EXECUTORS", "Executor", "LocalExecutor"]
