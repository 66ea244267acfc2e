"""Deterministic batch loaders: a tensor loader for in-memory data and a seeded DataLoader wrapper.

A run must be a pure function of its spec (DESIGN.md), so batch order and augmentation never touch
the global RNG: epoch ``e`` of a loader with seed ``s`` draws from
``torch.Generator().manual_seed(epoch_seed(s, e))``.  Call ``set_epoch(e)`` before iterating (as with
``DistributedSampler``); without it, every iteration replays epoch 0.

:class:`TensorLoader` slices tensors that already live on the training device: no per-sample Python
work, no worker processes, no host→device copies per batch (move the data set to the GPU once).
"""
from __future__ import annotations

import hashlib
import math
from typing import Iterator

import torch
from torch import Tensor

from benchmark.tasks.datasets import Augment, Data
from pruners.registry import ConfigError


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch)`` by SHA-256 (stable across processes and Python versions)."""
    digest = hashlib.sha256(f"sparsebench-loader:{int(seed)}:{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _check_batching(batch_size: int, max_batches: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}; set e.g. batch_size = 128")
    if not isinstance(max_batches, int) or max_batches < 0:
        raise ConfigError(f"max_batches must be an integer >= 0 (0 = full epoch), got {max_batches!r}")


class TensorLoader:
    """Iterate ``(xb, yb)`` mini-batches over in-memory tensors ``x``, ``y`` (same first dimension).

    Args:
        x, y: the data; batches stay on their device.
        batch_size: examples per batch.
        shuffle: a fresh permutation per epoch (seeded by ``(seed, epoch)``); otherwise in order.
        seed: the loader seed (the run seed, typically).
        augment: optional batched augmentation ``(xb, generator) -> xb`` applied to each batch with
            the epoch's generator (after the permutation was drawn).
        drop_last: drop the last incomplete batch.
        max_batches: > 0 caps the batches per epoch (quick CPU recipes); 0 = the full epoch.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 augment: Augment | None = None, drop_last: bool = False, max_batches: int = 0) -> None:
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"x has {x.shape[0]} examples but y has {y.shape[0]}; pass matching tensors")
        _check_batching(batch_size, max_batches)
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.augment = augment
        self.drop_last = drop_last
        self.max_batches = max_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    @property
    def num_examples(self) -> int:
        return int(self.x.shape[0])

    def __len__(self) -> int:
        n = self.num_examples
        batches = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        n, bs = self.num_examples, self.batch_size
        perm = torch.randperm(n, generator=generator).to(self.x.device) if self.shuffle else None
        for b in range(len(self)):
            if perm is None:
                xb, yb = self.x[b * bs:(b + 1) * bs], self.y[b * bs:(b + 1) * bs]
            else:
                idx = perm[b * bs:(b + 1) * bs]
                xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self.augment is not None:
                xb = self.augment(xb, generator)
            yield xb, yb


class SeededDataLoader:
    """A ``torch.utils.data.DataLoader`` over a folder data set with a per-epoch seeded generator.

    ``set_epoch(e)`` reseeds the loader's generator with ``epoch_seed(seed, e)``, which fixes the
    shuffle order and the worker seeds (hence the transforms' random draws in the workers).  Batches
    are moved to ``device`` (``non_blocking`` with pinned memory on CUDA); ``max_batches`` caps an epoch.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool, seed: int,
                 device: torch.device | str = "cpu", workers: int = 0, drop_last: bool = False,
                 max_batches: int = 0) -> None:
        _check_batching(batch_size, max_batches)
        if not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
        self.device = torch.device(device)
        self.seed = int(seed)
        self.max_batches = max_batches
        self.epoch = 0
        self.generator = torch.Generator().manual_seed(epoch_seed(self.seed, 0))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, drop_last=drop_last,
            generator=self.generator, pin_memory=self.device.type == "cuda",
            persistent_workers=False)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle order and worker seeds the next iteration uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.loader)
        return min(n, self.max_batches) if self.max_batches else n

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch))
        non_blocking = self.device.type == "cuda"
        for b, (xb, yb) in enumerate(self.loader):
            if self.max_batches and b >= self.max_batches:
                break
            yield xb.to(self.device, non_blocking=non_blocking), yb.to(self.device, non_blocking=non_blocking)


Loader = TensorLoader | SeededDataLoader


def make_loaders(data: Data, batch_size: int, eval_batch_size: int, seed: int,
                 device: torch.device | str = "cpu", max_train_batches: int = 0,
                 workers: int = 0) -> tuple[Loader, Loader]:
    """Train and test loaders for ``data``.

    In-memory data are moved to ``device`` once and served by :class:`TensorLoader` (train: shuffled,
    augmented with ``data.augment``; test: in order, not augmented).  Folder data sets get a
    :class:`SeededDataLoader` with ``workers`` worker processes.  Both support ``set_epoch``.
    """
    device = torch.device(device)
    if data.in_memory:
        assert data.train_x is not None and data.train_y is not None
        assert data.test_x is not None and data.test_y is not None
        tx, ty = data.train_x.to(device), data.train_y.to(device)
        vx, vy = data.test_x.to(device), data.test_y.to(device)
        train = TensorLoader(tx, ty, batch_size, shuffle=True, seed=seed, augment=data.augment,
                             max_batches=max_train_batches)
        test = TensorLoader(vx, vy, eval_batch_size, shuffle=False, seed=seed)
        return train, test
    if data.train_set is None or data.test_set is None:
        raise ConfigError("the data set has neither tensors nor Dataset objects; its loader is broken — "
                          "fill train_x/train_y/test_x/test_y or train_set/test_set")
    train_l = SeededDataLoader(data.train_set, batch_size, shuffle=True, seed=seed, device=device,
                               workers=workers, max_batches=max_train_batches)
    test_l = SeededDataLoader(data.test_set, eval_batch_size, shuffle=False, seed=seed, device=device,
                              workers=workers)
    return train_l, test_l
