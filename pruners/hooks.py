"""Training-time hooks shared by pruner schedules, reparams and the training loop.

The training loop (:func:`pruners.session.fit`) owns a :class:`TrainState` and calls every
:class:`Callback` at fixed points of each step.  Dense-to-sparse schedules (GMP, RigL, AC/DC, …),
reparams (Sign-In's periodic reset, PILoT's α schedule) and metric loggers are all callbacks, so
the loop itself never needs to know which method is running.

Order inside one optimisation step::

    loss.backward()
    for cb in callbacks: cb.before_step(state)      # e.g. mask the gradients
    optimizer.step(); scheduler.step()              # optimizer.step skipped if a callback set state.skip_step
    for cb in callbacks: cb.after_step(state)       # e.g. re-zero pruned weights, update masks

:func:`run_step` is that step; :func:`pruners.session.fit` is the one loop that calls it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn


@dataclass
class PruneContext:
    """What a score function may use besides the model (DESIGN.md: seeded RNG, data, loss, device).

    Attributes:
        seed: the run seed; ``generator()`` gives a fresh torch.Generator seeded from it and a tag.
        batches: ``batches(n_samples)`` returns a list of (x, y) batches holding ``n_samples``
            training samples in a fixed order, or ``None`` when the task has no data.
        loss_fn: the task loss, ``loss_fn(outputs, targets) -> scalar``.
        device: where the model lives.
        num_classes: the number of outputs (classes) of the task.
        input_shape: the shape of one input sample (for data-free scores such as SynFlow).
        prune_batch_size: the batch size data-dependent scores should use.
    """

    seed: int
    batches: Callable[[int], list[tuple[torch.Tensor, torch.Tensor]]] | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    num_classes: int
    input_shape: tuple[int, ...]
    prune_batch_size: int = 128

    def generator(self, tag: int = 0) -> torch.Generator:
        """A CPU generator seeded by (seed, tag): the same spec and seed give the same random draws."""
        g = torch.Generator()
        g.manual_seed((int(self.seed) * 1_000_003 + int(tag) * 7919 + 12345) % (2**63 - 1))
        return g


@dataclass
class TrainState:
    """Everything a callback may read or change during training.

    ``masks`` is the :class:`pruners.enforce.MaskEnforcer` that keeps pruned weights at zero; a
    schedule that changes the masks calls ``state.masks.update(new_masks)``.  ``metrics`` collects
    per-epoch values that callbacks want logged (merged into metrics.jsonl at epoch end).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    masks: Any
    ctx: PruneContext
    epochs: int
    steps_per_epoch: int
    scheduler: Any = None
    epoch: int = 0
    step: int = 0
    loss: torch.Tensor | None = None
    batch: tuple[torch.Tensor, torch.Tensor] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra_train_flops: float = 0.0   # additional training cost in dense-forward units (e.g. RigL's dense grads)
    reparam: Any = None
    stop: bool = False               # a callback sets it to end training early (pruners.session.fit)
    skip_step: bool = False          # a before_step callback sets it to skip this step's optimiser update

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]."""
        return self.step / max(1, self.total_steps)

    def current_lr(self, group: int = 0) -> float:
        return float(self.optimizer.param_groups[group]["lr"])


class Callback:
    """Base class: override the events you need; every method is a no-op by default."""

    def on_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def before_step(self, state: TrainState) -> None: ...

    def after_step(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict:
        """State to checkpoint for resumable runs (default: nothing)."""
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def run_step(state: "TrainState", callbacks: Sequence["Callback"], x: torch.Tensor, y: torch.Tensor,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             check: Callable[[torch.Tensor], None] | None = None,
             autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """One optimisation step on ``(x, y)`` in the order of the module docstring; returns the loss.

    ``check(loss)`` runs after the forward and before the backward (the loop's divergence check
    raises there, so a diverged step changes nothing); ``autocast_dtype`` runs the forward under
    ``torch.autocast`` (bf16 on a GPU).
    """
    model, opt = state.model, state.optimizer
    state.batch = (x, y)
    opt.zero_grad(set_to_none=True)
    amp = torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with amp:
        loss = loss_fn(model(x), y)
    if check is not None:
        check(loss)
    loss.backward()
    state.loss = loss.detach()
    state.skip_step = False
    for cb in callbacks:
        cb.before_step(state)
    if not state.skip_step:          # e.g. RigL's code: a mask-update iteration replaces the step
        opt.step()
    if state.scheduler is not None:
        state.scheduler.step()
    for cb in callbacks:
        cb.after_step(state)
    state.step += 1
    return state.loss
