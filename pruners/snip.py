"""SNIP: single-shot network pruning by connection sensitivity (Lee, Ajanthan, Torr, ICLR 2019).

Score (paper Eq. 6): the connection sensitivity of weight j is the magnitude of the derivative of the
loss with respect to a multiplicative mask c_j at c = 1, |∂L/∂c_j| = |θ_j · ∂L/∂θ_j|, normalised by the
sum over all prunable weights, s_j = |g_j θ_j| / Σ_k |g_k θ_k|.  Kept: the largest s_j under one global
threshold (``allocation = "global"``; any allocation can be used).

Choices (PAPERS.md §8, the SynFlow authors' public implementation ``Pruners/pruners.py``):

* Data: ``samples_per_class × num_classes`` training samples (default 10 × classes) from the run's
  seeded pruning sample ``ctx.batches(n)``.  The loss is the mean over *all* these samples (batches are
  weighted by their size), i.e. the gradient of one "mini-batch" of n samples as in the paper; the
  reference code sums the batch-mean losses instead, which differs only when batches have unequal
  sizes.  The absolute value is taken after summing over batches (as the reference code does).
* Mode: ``train_mode = False`` (default) scores in eval mode, as the SynFlow code's ``prune_loop``
  does by default; batch norm then uses its running statistics.  Buffers are restored either way.

This module also holds the helpers every PaI scorer uses: :func:`scoring_state` (restore buffers,
train / eval flags, ``requires_grad`` and ``.grad`` exactly), :func:`require_prunable` and
:func:`pruning_batches`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from pruners.base import Pruner, register_pruner
from pruners.hooks import PruneContext
from pruners.masks import prunable_parameters
from pruners.registry import ConfigError


# ------------------------------------------------------------------------------------------------
# shared helpers of the PaI scorers

@contextlib.contextmanager
def scoring_state(model: nn.Module, *, train: bool | None = None) -> Iterator[None]:
    """Run a scorer without leaving a trace on ``model``.

    On entry: remember every buffer (cloned), every module's ``training`` flag, every parameter's
    ``requires_grad`` and ``.grad``; optionally switch the whole model to train (``True``) or eval
    (``False``) mode.  On exit (also on error): copy the buffers back, restore the flags and put the
    original ``.grad`` objects back, so batch-norm running statistics, modes and gradients are exactly
    as before.
    """
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = {n: m.training for n, m in model.named_modules()}
    params = dict(model.named_parameters())
    req = {n: p.requires_grad for n, p in params.items()}
    grads = {n: p.grad for n, p in params.items()}
    if train is not None:
        model.train(train)
    try:
        yield
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n])
        for n, m in model.named_modules():
            if n in modes:
                m.training = modes[n]
        for n, p in params.items():
            p.requires_grad_(req[n])
            p.grad = grads[n]


def require_prunable(model: nn.Module, pruner: str) -> dict[str, nn.Parameter]:
    """The prunable parameters, or a ConfigError when the model has none."""
    params = prunable_parameters(model)
    if not params:
        raise ConfigError(f"pruner {pruner!r}: the model has no prunable layers (weights of Linear / Conv "
                          "modules); use pruner 'dense' or a model with Linear / Conv layers")
    return params


def pruning_batches(ctx: PruneContext, n_samples: int, pruner: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``ctx.batches(n_samples)``, refusing tasks without data with a one-line ConfigError."""
    if ctx.batches is None:
        raise ConfigError(f"pruner {pruner!r} scores with training data but this task has none; use a "
                          "data-free pruner (random, magnitude, synflow)")
    batches = [(x, y) for x, y in ctx.batches(int(n_samples)) if len(y) > 0]
    if not batches:
        raise ConfigError(f"pruner {pruner!r} received no training samples; the task's training set is empty")
    return batches


def weighted_losses(model: nn.Module, ctx: PruneContext,
                    batches: list[tuple[torch.Tensor, torch.Tensor]],
                    temperature: float = 1.0) -> Iterator[torch.Tensor]:
    """Per batch, ``loss(model(x) / T, y) · |batch| / n``: their sum is the mean loss over all n samples."""
    n = sum(len(y) for _, y in batches)
    for x, y in batches:
        out = model(x)
        if temperature != 1.0:
            out = out / temperature
        yield ctx.loss_fn(out, y) * (len(y) / n)


def normalise(scores: dict[str, torch.Tensor], denominator: torch.Tensor) -> dict[str, torch.Tensor]:
    """Divide every score by ``denominator`` unless it is 0 (then the scores are returned unchanged)."""
    if float(denominator) == 0.0:
        return scores
    return {n: s / denominator for n, s in scores.items()}


# ------------------------------------------------------------------------------------------------

@register_pruner("snip")
@dataclass
class SNIP(Pruner):
    """SNIP connection sensitivity |θ ⊙ ∂L/∂θ| / Σ|θ ⊙ ∂L/∂θ| (Lee et al. 2019, Eq. 6).

    Hyperparameters:
        samples_per_class: training samples per class in the pruning sample (n = this × classes).
        train_mode: score with the model in train mode (batch statistics) instead of eval mode.
    """

    samples_per_class: int = 10
    train_mode: bool = False

    needs_data = True
    description = "SNIP connection sensitivity |θ·∂L/∂θ| at initialisation"
    paper = "Lee, Ajanthan, Torr. SNIP: Single-shot Network Pruning based on Connection Sensitivity. ICLR 2019"
    url = "https://arxiv.org/abs/1810.02340"

    def validate(self) -> None:
        if self.samples_per_class < 1:
            raise ConfigError(f"pruner 'snip' samples_per_class {self.samples_per_class} must be >= 1; the paper "
                              "uses one mini-batch, the SynFlow code 10 per class")

    def gradients(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """∂L/∂θ of the mean loss over the pruning sample, for every prunable weight."""
        params = require_prunable(model, "snip")
        batches = pruning_batches(ctx, self.samples_per_class * ctx.num_classes, "snip")
        names = list(params)
        total = [torch.zeros_like(p) for p in params.values()]
        with scoring_state(model, train=self.train_mode):
            for p in params.values():
                p.requires_grad_(True)
            for loss in weighted_losses(model, ctx, batches):
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                for acc, g in zip(total, grads):
                    if g is not None:
                        acc.add_(g.detach())
        return dict(zip(names, total))

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        params = require_prunable(model, "snip")
        grads = self.gradients(model, ctx)
        raw = {n: (p.detach() * grads[n]).abs() for n, p in params.items()}
        return normalise(raw, sum(s.sum() for s in raw.values()))
