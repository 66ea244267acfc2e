"""One training session and one loop (DESIGN.md, "Data flow of one run").

:func:`build_session` is the only place that assembles a training session: masks applied to the model,
the reparam installed on them, the :class:`pruners.MaskEnforcer` over the tensors that carry each
masked weight, the optimiser (wrapped by the reparam), the learning-rate schedule and the callbacks
(enforcer first, then the reparam's, the pruner's schedule, then any extra ones), and the
:class:`TrainState` they share.  :func:`fit` is the only training loop: the runner, the plug-in
conformance kit, the reproductions' toys, the benchmarks, the GPU check and the graphon analysis'
loss curves all train through it.

The loop is method-agnostic: every method acts through :class:`pruners.Callback` events at fixed
points (``pruners.hooks``).  A non-finite or exploding loss ends training with :class:`Diverged` at
that step, before its backward.  A callback may end training early by setting ``state.stop``
(the theory toys stop at a loss threshold); the loop then skips the rest of the epoch and calls
``on_end``.  Final accuracy is the last epoch's test accuracy; the best epoch is never substituted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from pruners.enforce import MaskEnforcer
from pruners.hooks import Callback, PruneContext, TrainState, run_step
from pruners.masks import Masks, prunable_parameters

EXPLODING_LOSS = 1e6
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Diverged(Exception):
    """Training produced a NaN / inf or exploding loss."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss


@dataclass
class Session:
    """A model ready to train: its optimiser, schedule, enforcer and callbacks, and their shared state."""

    state: TrainState
    callbacks: list[Callback]
    enforcer: MaskEnforcer | None
    reparam: Any = None

    @property
    def model(self) -> nn.Module:
        return self.state.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.state.optimizer

    @property
    def masks(self) -> Masks | None:
        """The current masks (a schedule may have changed them), ``None`` for a dense session."""
        return self.enforcer.masks if self.enforcer is not None else None

    def start(self) -> None:
        """Call every callback's ``on_start`` (:func:`fit` does this when it starts at epoch 0; a resumed
        run calls it before restoring the checkpoint's state)."""
        for cb in self.callbacks:
            cb.on_start(self.state)


class AfterStep(Callback):
    """Calls ``fn(state)`` after every optimiser step (after the other callbacks' ``after_step``); a true
    return ends training (``state.stop``).  For recording per-step values (toys, loss curves)."""

    def __init__(self, fn: Callable[[TrainState], bool | None]) -> None:
        self.fn = fn

    def after_step(self, state: TrainState) -> None:
        if self.fn(state):
            state.stop = True


def build_session(model: nn.Module, masks: Masks | None,
                  optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer], *,
                  reparam: Any = None, pruner: Any = None, allocation: Any = None, sparsity: float = 0.0,
                  scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
                  callbacks: Sequence[Callback] = (), ctx: PruneContext | None = None,
                  epochs: int = 1, steps_per_epoch: int = 1, weight_pass: bool | None = None) -> Session:
    """Assemble a training session (the order is part of the contract; module docstring).

    Args:
        model: the network, already on its device; changed in place (masks applied, reparam installed).
        masks: the initial masks, or ``None`` for dense training (no enforcer; a reparam then sees
            all-ones masks).
        optimizer: ``params -> optimiser`` over the parameters that require gradients after the reparam
            is installed (e.g. Sign-In's factors m and w); the reparam may wrap it (HAM, NanoAdam).
        reparam: a :class:`reparam.Reparam` (``apply``, ``mask_targets``, ``wrap_optimizer``,
            ``callbacks``), or ``None`` for plain weights.
        pruner, allocation, sparsity: the pruner whose schedule callbacks join the session
            (``pruner.callbacks(sparsity, allocation)``), or ``None``.
        scheduler: ``base optimiser -> lr scheduler``, stepped after every optimiser step.
        callbacks: extra callbacks, run after the enforcer's, the reparam's and the pruner's.
        ctx: the :class:`PruneContext` schedules that rescore during training read.
        epochs, steps_per_epoch: the length of training (schedules read ``state.total_steps``).
        weight_pass: the enforcer's post-step weight multiply (:class:`pruners.MaskEnforcer`).
    """
    enforcer = None
    if masks is not None:
        masks.apply_(model)
        if reparam is not None:
            reparam.apply(model, masks)
            targets = reparam.mask_targets(model, masks)
        else:
            params = prunable_parameters(model)
            targets = {n: [params[n]] for n in masks}
        enforcer = MaskEnforcer(targets, masks, weight_pass=weight_pass)
    elif reparam is not None:
        reparam.apply(model, Masks.ones(model))
    opt = optimizer([p for p in model.parameters() if p.requires_grad])
    if reparam is not None:
        opt = reparam.wrap_optimizer(opt)
    sched = scheduler(getattr(opt, "base_optimizer", opt)) if scheduler is not None else None
    cbs: list[Callback] = [*([enforcer] if enforcer is not None else []),
                           *(reparam.callbacks() if reparam is not None else []),
                           *(pruner.callbacks(sparsity, allocation) if pruner is not None else []),
                           *callbacks]
    state = TrainState(model=model, optimizer=opt, masks=enforcer, ctx=ctx, epochs=epochs,
                       steps_per_epoch=steps_per_epoch, scheduler=sched, reparam=reparam)
    return Session(state=state, callbacks=cbs, enforcer=enforcer, reparam=reparam)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: LossFn, classification: bool = True) -> dict[str, float]:
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


def fit(session: Session, train_batches: Iterable, loss_fn: LossFn, *, test_batches: Iterable | None = None,
        classification: bool = True, on_epoch: Callable[[dict[str, Any]], None] | None = None,
        start_epoch: int = 0, eval_every: int = 1, check_loss: bool = True,
        autocast_dtype: torch.dtype | None = None) -> list[dict[str, Any]]:
    """Train ``session`` from ``start_epoch`` to ``state.epochs``; return the evaluated epochs' metrics.

    Each epoch iterates ``train_batches`` once (``set_epoch(epoch)`` first where it has one) and runs
    one step per batch (:func:`pruners.hooks.run_step`).  Metrics — train loss, lr, epoch time, the
    callbacks' ``state.metrics`` and, with ``test_batches``, :func:`evaluate` — are computed every
    ``eval_every`` epochs and after the last one, and passed to ``on_epoch`` right away (the runner
    appends them to metrics.jsonl and may checkpoint).

    ``check_loss`` reads the loss every step (a device sync on a GPU) to raise :class:`Diverged` at the
    exact step; off, the mean train loss is ``nan``.  ``autocast_dtype`` runs the forward under
    ``torch.autocast`` (bf16 on a GPU).
    """
    state, callbacks, model = session.state, session.callbacks, session.model
    history: list[dict[str, Any]] = []
    losses: list[float] = []

    def check(loss: torch.Tensor) -> None:
        value = float(loss.detach())
        if not math.isfinite(value) or abs(value) > EXPLODING_LOSS:
            raise Diverged(state.step, value)
        losses.append(value)

    if start_epoch == 0:
        session.start()
    for epoch in range(start_epoch, state.epochs):
        state.epoch = epoch
        model.train()
        if hasattr(train_batches, "set_epoch"):
            train_batches.set_epoch(epoch)
        for cb in callbacks:
            cb.on_epoch_start(state)
        t0 = time.perf_counter()
        losses.clear()
        x = None
        for x, y in train_batches:
            run_step(state, callbacks, x, y, loss_fn, check if check_loss else None, autocast_dtype)
            if state.stop:
                break
        if x is not None and x.device.type == "cuda":
            torch.cuda.synchronize(x.device)   # the epoch time includes the queued GPU work
        train_time = time.perf_counter() - t0
        if state.stop:
            break
        state.metrics = {}
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.stop:
            break
        if (epoch + 1) % eval_every and epoch + 1 != state.epochs:
            continue
        metrics = {"epoch": epoch + 1, "step": state.step,
                   "train_loss": sum(losses) / len(losses) if losses else math.nan,
                   "lr": state.current_lr(), "epoch_train_time_s": train_time}
        if test_batches is not None:
            metrics.update(evaluate(model, test_batches, loss_fn, classification))
        metrics.update(state.metrics)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    for cb in callbacks:
        cb.on_end(state)
    return history
