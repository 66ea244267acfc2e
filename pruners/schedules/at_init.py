"""``at_init``: score once before training and keep the masks fixed (pruning at initialisation).

The schedule of random, magnitude, SNIP, GraSP and SynFlow (and of any scoring plugin): masks =
``pruner.select`` at the initial weights, then the recipe trains the sparse network unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from pruners.allocation import Allocation
from pruners.hooks import PruneContext
from pruners.masks import Masks
from pruners.schedules.base import Schedule, register_schedule


@register_schedule("at_init")
@dataclass
class AtInit(Schedule):
    """Prune at initialisation; no mask change during training."""

    family = None
    rescores = False
    description = "score once at initialisation, train the fixed sparse network"

    def initial_masks(self, pruner, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        return pruner.select(model, ctx, 1.0 - float(sparsity), allocation)
