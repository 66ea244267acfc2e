"""A task recipe's loss, optimiser and learning-rate schedule (``benchmark.tasks.base.Recipe``).

The session they go into and the loop that trains it are :func:`pruners.session.build_session` and
:func:`pruners.session.fit`.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn
import torch.nn.functional as F

from benchmark.tasks.base import Recipe

def loss_function(recipe: Recipe) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if recipe.loss == "mse":
        def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(out.reshape(y.shape) if out.numel() == y.numel() else out, y)
        return mse
    smoothing = recipe.label_smoothing

    def ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, label_smoothing=smoothing)
    return ce


def build_optimizer(params: Iterable[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params`` (weight decay on every parameter, as the papers' code)."""
    params = list(params)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               weight_decay=recipe.weight_decay)
    adam = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return adam(params, lr=recipe.lr, betas=tuple(recipe.betas), weight_decay=recipe.weight_decay,
                fused=_fused_ok(params))


def _fused_ok(params: list[nn.Parameter]) -> bool | None:
    """Adam / AdamW use torch's fused kernel where every parameter allows it (floating point, on CPU or
    CUDA).  Why: on CPU the default for-loop implementation takes ``torch.sqrt`` of the second moment,
    and that kernel is ~15× slower on the exact zeros that pruned entries keep (docs/benchmarks.md);
    the fused kernel has no such cost and is faster for dense training too.  Same algorithm, different
    rounding from the for-loop version; deterministic on CPU."""
    ok = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return True if ok else None


def lr_factor(recipe: Recipe, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at ``step`` (per-step schedules; warm-up is linear from 0.1×)."""
    warm = int(recipe.warmup_epochs * steps_per_epoch)
    if warm and step < warm:
        return 0.1 + 0.9 * step / warm
    t = (step - warm) / max(1, total_steps - warm)
    if recipe.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if recipe.lr_schedule == "linear":
        return max(0.0, 1.0 - t)
    if recipe.lr_schedule in ("step", "multistep"):
        milestones = recipe.milestones or ((0.5, 0.75) if recipe.lr_schedule == "multistep" else (0.5,))
        return recipe.gamma ** sum(t >= m for m in milestones)
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int,
                    cycle_epochs: int | None = None):
    """Per-step LambdaLR; with ``cycle_epochs`` the schedule restarts every cycle (IMP / LRR rounds)."""
    cycle = (cycle_epochs or recipe.epochs) * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(recipe, s % cycle, cycle, steps_per_epoch))
