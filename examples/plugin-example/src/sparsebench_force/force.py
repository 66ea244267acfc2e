"""FORCE: progressive skeletonization with foresight connection sensitivity.

de Jorge, Sanyal, Behl, Torr, Rogez, Dokania, "Progressive Skeletonization: Trimming more fat from a
network at initialization", ICLR 2021 (https://arxiv.org/abs/2006.09081; reference code
https://github.com/naver/force, MIT).

FORCE looks for the mask c that maximises the *foresight connection sensitivity* of the pruned
network, i.e. the connection sensitivity of θ̄ = c ⊙ θ₀ rather than of the dense θ₀ (SNIP):

    S(θ₀, c) = | θ₀ ⊙ ∇_θ̄ L(θ̄) |,   θ̄ = c ⊙ θ₀                                   (paper eqs. 5–6)

The gradient is evaluated at the *pruned* network, but the saliency multiplies it by the *original*
weights θ₀, so a connection removed in an earlier step still has a saliency and can come back later
("resurrection"; this is what separates FORCE from Iterative SNIP, where pruned weights are out for
good).  The mask is found progressively: T steps, step t keeps the top d_t of S(θ₀, c_{t-1}), with
the exponential schedule of the paper

    d_t = d^{t/T}      (t = 1 … T; d the target density; ``schedule = "exp"``)

or the linear one d_t = 1 − t(1 − d)/T (``schedule = "linear"``, offered by the reference code).

Choices where the paper leaves a point open (hyperparameters, documented):

* ``iterations`` T = 10 and ``batches`` = 1 mini-batch per gradient are the reference code's
  defaults (``num_steps=10``, ``num_batches=1``); the mini-batch size is the run's prune batch size.
  With several batches the gradient is the sample-weighted mean (the reference averages per-batch
  gradients of equal-size batches, which is the same thing).
* Each step keeps weights under the run's layer allocation (``global`` by default, as the
  reference's single global threshold); ties go to the lower index (sparsebench's stable order).
* The gradient is taken with the model in its current train / eval mode on copies of its buffers, so
  batch-norm statistics, parameters and ``.grad`` of the model are left untouched.
* ``scores(model, ctx)`` returns S(θ₀, 1), the first step's saliency (identical to SNIP's |θ ⊙ g|).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from pruners import Allocation, ConfigError, Masks, PruneContext, Pruner, prunable_parameters, register_pruner
from pruners.base import checked_scores


def densities(density: float, iterations: int, schedule: str = "exp") -> list[float]:
    """The densities d_1 … d_T of the T pruning steps (the last one is exactly ``density``)."""
    if schedule == "exp":
        out = [density ** (t / iterations) for t in range(1, iterations + 1)]
    else:
        out = [1.0 - t * (1.0 - density) / iterations for t in range(1, iterations + 1)]
    out[-1] = density
    return out


@register_pruner("force")
@dataclass
class FORCE(Pruner):
    """FORCE progressive pruning at initialisation (de Jorge et al., ICLR 2021).

    Attributes:
        iterations: T, the number of progressive pruning steps (≥ 1; T = 1 is SNIP).
        schedule: ``exp`` (the paper's d_t = d^{t/T}) or ``linear``.
        batches: mini-batches of ``ctx.prune_batch_size`` samples per gradient (≥ 1).
    """

    iterations: int = 10
    schedule: str = "exp"
    batches: int = 1

    family = "pai"
    needs_data = True
    description = "FORCE: progressive pruning at init by foresight connection sensitivity"
    paper = ("de Jorge, Sanyal, Behl, Torr, Rogez, Dokania, 'Progressive Skeletonization: Trimming more fat "
             "from a network at initialization', ICLR 2021")
    url = "https://arxiv.org/abs/2006.09081"
    version = "0.1.0"
    author = "sparsebench plugin example"

    def validate(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"force iterations must be >= 1, got {self.iterations}; use e.g. 10")
        if self.schedule not in ("exp", "linear"):
            raise ConfigError(f"force schedule {self.schedule!r} is unknown; choose 'exp' or 'linear'")
        if self.batches < 1:
            raise ConfigError(f"force batches must be >= 1, got {self.batches}; use e.g. 1")

    # ------------------------------------------------------------------------------------------
    def _data(self, ctx: PruneContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
        data = ctx.batches(self.batches * ctx.prune_batch_size) if ctx.batches is not None else None
        if not data:
            raise ConfigError("pruner 'force' needs training batches but this task has no data; use a data-free "
                              "pruner such as 'synflow'")
        return data

    def saliency(self, model: nn.Module, ctx: PruneContext, masks: Masks) -> dict[str, torch.Tensor]:
        """S(θ₀, c) = |θ₀ ⊙ ∇_θ̄ L(θ̄)| at θ̄ = c ⊙ θ₀ (eqs. 5–6), without changing ``model``."""
        params = prunable_parameters(model)
        theta0 = {n: p.detach() for n, p in params.items()}
        data = self._data(ctx)
        total = sum(len(y) for _, y in data)
        grads = {n: torch.zeros_like(t) for n, t in theta0.items()}
        for x, y in data:
            masked = {n: (t * masks[n].to(device=t.device, dtype=t.dtype)).requires_grad_(True)
                      for n, t in theta0.items()}
            buffers = {n: b.detach().clone() for n, b in model.named_buffers()}  # BN statistics stay as they are
            out = functional_call(model, {**buffers, **masked}, (x,))
            loss = ctx.loss_fn(out, y) * (len(y) / total)
            for n, g in zip(masked, torch.autograd.grad(loss, list(masked.values()), allow_unused=True)):
                if g is not None:
                    grads[n] += g.detach()
        return {n: (theta0[n] * grads[n]).abs() for n in theta0}

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """The first step's saliency S(θ₀, 1) (= SNIP's connection sensitivity)."""
        return self.saliency(model, ctx, Masks.ones(model))

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        masks = Masks.ones(model)
        self._densities = densities(1.0 - sparsity, self.iterations, self.schedule)
        for d_t in self._densities:
            masks = allocation.masks(checked_scores(self, self.saliency(model, ctx, masks), model), d_t)
        return masks

    def extra_results(self) -> dict:
        return {"force_densities": list(getattr(self, "_densities", []))}
