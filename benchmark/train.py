"""The training loop with callbacks (DESIGN.md, "Data flow of one run").

The loop is method-agnostic: pruner schedules, reparams, mask enforcement and metric trackers are
:class:`pruners.Callback` objects called at fixed points of every step.  A non-finite or exploding
loss ends training with :class:`Diverged` (recorded as status ``diverged`` with the step), never a
crash.  Final accuracy is the last epoch's test accuracy; the best epoch is reported separately and
never substituted for it.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from benchmark.tasks.base import Recipe
from pruners import Callback, TrainState
from pruners.hooks import run_step

EXPLODING_LOSS = 1e6


class Diverged(Exception):
    """Training produced a NaN / inf or exploding loss."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss


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


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable, classification: bool = True) -> dict[str, float]:
    """Test loss (mean over samples) and, for classification, top-1 accuracy in percent."""
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    for x, y in loader:
        out = model(x)
        n = y.shape[0]
        loss_sum += float(loss_fn(out, y)) * n
        if classification:
            correct += int((out.argmax(dim=1) == y).sum())
        total += n
    model.train(was_training)
    res = {"test_loss": loss_sum / max(1, total)}
    if classification:
        res["test_top1"] = 100.0 * correct / max(1, total)
    return res


def train_step(state: TrainState, callbacks: Sequence[Callback], x: torch.Tensor, y: torch.Tensor,
               loss_fn: Callable, autocast_dtype: torch.dtype | None = None, check_loss: bool = True) -> float:
    """One optimiser step (:func:`pruners.hooks.run_step`) with the loop's divergence check; returns
    the loss (``nan`` when ``check_loss`` is off).

    ``check_loss`` reads the loss every step (a device sync on GPU) to raise :class:`Diverged` at the
    exact step; ``autocast_dtype`` runs the forward under ``torch.autocast`` (``benchmark.gpu_check``:
    bf16 on a GPU).
    """
    value = math.nan

    def check(loss: torch.Tensor) -> None:
        nonlocal value
        value = float(loss.detach())
        if not math.isfinite(value) or abs(value) > EXPLODING_LOSS:
            raise Diverged(state.step, value)

    run_step(state, callbacks, x, y, loss_fn, check if check_loss else None, autocast_dtype)
    return value


def train(state: TrainState, train_loader: Any, test_loader: Any, callbacks: Sequence[Callback],
          loss_fn: Callable, classification: bool = True,
          on_epoch: Callable[[dict[str, Any]], None] | None = None,
          start_epoch: int = 0, eval_every: int = 1) -> list[dict[str, Any]]:
    """Train for ``state.epochs`` epochs; return the per-epoch metric dicts.

    Metrics are computed every ``eval_every`` epochs and after the last epoch (toy tasks run
    thousands of one-step epochs).  ``on_epoch`` receives each evaluated epoch's metrics right away (the runner appends them to metrics.jsonl
    and may checkpoint).  Raises :class:`Diverged` on a non-finite or exploding loss.
    """
    model = state.model
    history: list[dict[str, Any]] = []
    if start_epoch == 0:
        for cb in callbacks:
            cb.on_start(state)
    for epoch in range(start_epoch, state.epochs):
        state.epoch = epoch
        model.train()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        for cb in callbacks:
            cb.on_epoch_start(state)
        t0 = time.perf_counter()
        loss_sum, n_batches = 0.0, 0
        for x, y in train_loader:
            loss_sum += train_step(state, callbacks, x, y, loss_fn)
            n_batches += 1
        train_time = time.perf_counter() - t0
        state.metrics = {}
        for cb in callbacks:
            cb.on_epoch_end(state)
        if (epoch + 1) % eval_every and epoch + 1 != state.epochs:
            continue
        metrics = {"epoch": epoch + 1, "step": state.step, "train_loss": loss_sum / max(1, n_batches),
                   "lr": state.current_lr(), "epoch_train_time_s": train_time}
        metrics.update(evaluate(model, test_loader, loss_fn, classification))
        metrics.update(state.metrics)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    for cb in callbacks:
        cb.on_end(state)
    return history
