"""The sparsebench harness: specs, tasks, training loop, executors, results store and CLI.

``benchmark.results(out)`` returns every run of an output folder as a pandas DataFrame.
"""
from typing import Any

__all__ = ["results"]


def __getattr__(name: str) -> Any:
    """``benchmark.results`` on first use, so that torch-free modules (``benchmark.stats``, the
    leaderboard's table) can be imported without importing torch."""
    if name == "results":
        from benchmark.store import results

        return results
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
