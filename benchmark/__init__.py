"""The sparsebench harness: specs, tasks, training loop, executors, results store and CLI.

``benchmark.results(out)`` returns every run of an output folder as a pandas DataFrame.
"""
from benchmark.store import results

__all__ = ["results"]
