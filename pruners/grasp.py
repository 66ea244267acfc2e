"""GraSP: gradient signal preservation (Wang, Zhang, Grosse, ICLR 2020).

The paper scores the effect of removing weight θ_q on the gradient norm to first order,
S(−θ) = −θ ⊙ H g (Eq. 8), with H the Hessian and g the gradient of the loss, and removes the weights
with the *highest* S — those whose removal reduces the gradient flow least (or raises it).  Our scores
are "higher = keep", so the score is (H g) ⊙ θ = −S (PAPERS.md §8–9, the SynFlow authors'
implementation), normalised by |Σ (H g) ⊙ θ| as in both public implementations.

H g is computed exactly with a Hessian-vector product by double backprop: g = ∇L is computed once
without a graph (a constant, "stop-gradient" vector), then H g = ∇_θ (gᵀ ∇_θ L).  The logits are
divided by a temperature T (default 200, the paper's value) in both passes.

Choices:

* Data: ``samples_per_class × num_classes`` samples (default 10 × classes) from the seeded pruning
  sample ``ctx.batches``; not class-balanced (the original code draws exactly 10 per class).  L is the
  mean loss over all samples (batches weighted by size); the original code sums two half-batch mean
  losses, which scales H g by a constant and leaves the normalised ranking unchanged.
* The Hessian is the block of the prunable weights (Linear / Conv weights), as in the original code.
* Mode: eval by default (``train_mode = False``), as in the SynFlow code's prune loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pruners.base import Pruner, register_pruner
from pruners.hooks import PruneContext
from pruners.registry import ConfigError
from pruners.snip import normalise, pruning_batches, require_prunable, scoring_state, weighted_losses


@register_pruner("grasp")
@dataclass
class GraSP(Pruner):
    """GraSP scores (H g) ⊙ θ / |Σ (H g) ⊙ θ| with temperature-scaled logits (Wang et al. 2020, Eq. 8).

    Hyperparameters:
        samples_per_class: training samples per class (n = this × classes; paper: 10).
        temperature: logits are divided by this before the loss (paper: 200).
        train_mode: score in train mode (batch statistics) instead of eval mode.
    """

    samples_per_class: int = 10
    temperature: float = 200.0
    train_mode: bool = False

    needs_data = True
    description = "GraSP gradient-signal preservation (H g) ⊙ θ at initialisation"
    paper = "Wang, Zhang, Grosse. Picking Winning Tickets Before Training by Preserving Gradient Flow. ICLR 2020"
    url = "https://arxiv.org/abs/2002.07376"

    def validate(self) -> None:
        if self.samples_per_class < 1:
            raise ConfigError(f"pruner 'grasp' samples_per_class {self.samples_per_class} must be >= 1 (paper: 10)")
        if not self.temperature > 0:
            raise ConfigError(f"pruner 'grasp' temperature {self.temperature} must be > 0 (paper: 200)")

    def hessian_gradient(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """H g for every prunable weight, by double backprop over the pruning sample."""
        params = require_prunable(model, "grasp")
        plist = list(params.values())
        batches = pruning_batches(ctx, self.samples_per_class * ctx.num_classes, "grasp")
        with scoring_state(model, train=self.train_mode):
            for p in plist:
                p.requires_grad_(True)
            g = [torch.zeros_like(p) for p in plist]
            for loss in weighted_losses(model, ctx, batches, self.temperature):
                for acc, gi in zip(g, torch.autograd.grad(loss, plist, allow_unused=True)):
                    if gi is not None:
                        acc.add_(gi.detach())
            hg = [torch.zeros_like(p) for p in plist]
            for loss in weighted_losses(model, ctx, batches, self.temperature):
                grads = torch.autograd.grad(loss, plist, create_graph=True, allow_unused=True)
                z = sum((gs * gi).sum() for gs, gi in zip(g, grads) if gi is not None)
                if not isinstance(z, torch.Tensor) or not z.requires_grad:
                    continue  # the loss does not depend on the weights twice (e.g. a linear model)
                for acc, h in zip(hg, torch.autograd.grad(z, plist, allow_unused=True)):
                    if h is not None:
                        acc.add_(h.detach())
        return dict(zip(params, hg))

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        params = require_prunable(model, "grasp")
        hg = self.hessian_gradient(model, ctx)
        raw = {n: hg[n] * p.detach() for n, p in params.items()}
        return normalise(raw, sum(s.sum() for s in raw.values()).abs())
