"""Benchmark tasks: data sets, loaders, models and the registered task catalog.

``from benchmark.tasks import TASKS, get_task, load_data, make_loaders, build_model`` is the API the
harness uses; importing this package registers the built-in tasks (``catalog``).
"""
from __future__ import annotations

from benchmark.tasks.base import Recipe, Task, TASKS, build_model, register_task
from benchmark.tasks.datasets import DATASETS, Data, DatasetInfo, cached_data, dataset_info, load_data
from benchmark.tasks.loader import SeededDataLoader, TensorLoader, make_loaders
from benchmark.tasks.models import MODELS
from benchmark.tasks import catalog  # noqa: F401  (registers the built-in tasks)


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name is a ConfigError with a did-you-mean."""
    return TASKS.get(name)


__all__ = ["DATASETS", "Data", "DatasetInfo", "MODELS", "Recipe", "SeededDataLoader", "TASKS", "Task",
           "TensorLoader", "build_model", "cached_data", "dataset_info", "get_task", "load_data", "make_loaders",
           "register_task"]
