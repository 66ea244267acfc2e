"""Task = dataset + model + recipe, named and registered (DESIGN.md, "Task").

A task fixes everything about *what* is trained except the sparsification method, so that every
pruner and reparam is compared on the same data, architecture and schedule.  Recipes follow the
papers (see docs/methods.md for the source of each); a grid may override any recipe field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from pruners.registry import ConfigError, Registry, coerce_value

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine", "step", "multistep", "linear")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """How a task is trained.  All fields are part of a run's identity (its spec hash; a field at its
    default is left out of the hash, so changing a default here means bumping ``version``)."""

    version: ClassVar[str] = "1"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"           # one of OPTIMIZERS
    lr: float = 0.1
    momentum: float = 0.9            # SGD momentum; Adam's beta1 comes from `betas`
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"      # one of LR_SCHEDULES
    milestones: tuple[float, ...] = ()   # multistep: fractions of training where lr *= gamma
    gamma: float = 0.1
    warmup_epochs: float = 0.0       # linear warm-up from lr/10 ... lr (0 disables)
    label_smoothing: float = 0.0
    eval_batch_size: int = 1000
    max_train_batches: int = 0       # >0 caps batches per epoch (quick CPU recipes); 0 = full epoch
    loss: str = "cross_entropy"      # or "mse" for regression tasks
    eval_every: int = 1              # evaluate / log every k epochs (and always after the last one)
    eval_at_steps: tuple[int, ...] = ()  # also record test top-1 after these optimiser steps (anytime accuracy)
    precision: str = "fp32"          # "bf16": the training forward under torch.autocast(bfloat16) (GPU grids)
    channels_last: bool = False      # conv models in channels-last memory format (faster convs on GPUs)

    def validate(self) -> None:
        """Raise ConfigError for values no training run could use."""
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ConfigError(f"recipe epochs must be a positive integer, got {self.epochs!r}; set e.g. epochs = 10")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ConfigError(f"recipe batch_size must be a positive integer, got {self.batch_size!r}; "
                              "set e.g. batch_size = 128")
        if not isinstance(self.eval_batch_size, int) or self.eval_batch_size <= 0:
            raise ConfigError(f"recipe eval_batch_size must be a positive integer, got {self.eval_batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"recipe lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0 or self.momentum < 0 or self.label_smoothing < 0 or self.warmup_epochs < 0:
            raise ConfigError("recipe weight_decay, momentum, label_smoothing and warmup_epochs must be >= 0")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"recipe warmup_epochs ({self.warmup_epochs}) must be shorter than epochs ({self.epochs})")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ConfigError(f"recipe milestones must be fractions of training in (0, 1), got {list(self.milestones)}")
        if self.loss not in ("cross_entropy", "mse"):
            raise ConfigError(f"unknown loss {self.loss!r}; choose cross_entropy or mse")
        if not isinstance(self.eval_every, int) or self.eval_every <= 0:
            raise ConfigError(f"recipe eval_every must be a positive integer, got {self.eval_every!r}")
        if any(not isinstance(s, int) or s <= 0 for s in self.eval_at_steps):
            raise ConfigError(f"recipe eval_at_steps must be positive step counts, got {list(self.eval_at_steps)}; "
                              "set e.g. eval_at_steps = [300, 1000]")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown recipe precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.max_train_batches < 0:
            raise ConfigError("recipe max_train_batches must be >= 0 (0 means the full epoch)")

    def override(self, changes: Mapping[str, Any]) -> "Recipe":
        """A copy with ``changes`` applied; unknown keys and wrong types are ConfigErrors."""
        from pruners.registry import did_you_mean

        names = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in names:
                raise ConfigError(f"unknown recipe key {key!r}{did_you_mean(key, list(names))}; "
                                  f"valid keys: {', '.join(names)}")
            clean[key] = coerce_value(f"recipe {key}", value, getattr(self, key))
        new = dataclasses.replace(self, **clean)
        new.validate()
        return new


@dataclass(frozen=True)
class Task:
    """A registered benchmark task.

    Attributes:
        name: the registry name (``fmnist-lenet300``).
        dataset: dataset registry name; ``dataset_args`` its keyword arguments.
        model: model registry name; ``model_args`` its keyword arguments.
        recipe: the default training recipe.
        source: where the recipe comes from (paper / table), shown in docs and the leaderboard.
        prune_batches: batches given to data-dependent pruners (SNIP: 10 × classes samples).
    """

    name: str
    dataset: str
    model: str
    recipe: Recipe
    dataset_args: Mapping[str, Any] = field(default_factory=dict)
    model_args: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    description: str = ""


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Add a task to the registry (validating its recipe)."""
    task.recipe.validate()
    TASKS.add(task.name, task)
    return task


def build_model(task: Any) -> nn.Module:
    """Instantiate the model of ``task`` for its dataset (call after seeding).  ``task`` is a
    :class:`Task` or anything with its ``model``, ``model_args``, ``dataset``, ``dataset_args`` (a RunSpec)."""
    from benchmark.tasks.datasets import dataset_info
    from benchmark.tasks.models import MODELS

    info = dataset_info(task.dataset, **dict(task.dataset_args))
    factory: Callable[..., nn.Module] = MODELS.get(task.model)
    return factory(input_shape=info.input_shape, num_outputs=info.num_outputs, **dict(task.model_args))


def device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
