"""The first pruners: dense (no pruning), random, and magnitude at initialisation.

- ``dense``: keeps every weight; the reference every other method is compared with.
- ``random``: i.i.d. uniform scores from the run's seeded generator, so with ``uniform``
  allocation every layer keeps a uniformly random subset of the target density (Liu et al. 2022;
  Gadhikar et al. ICML 2023, "Why random pruning is all we need to start sparse").
- ``magnitude``: |θ| at initialisation (the "magnitude" baseline of the SynFlow paper,
  Tanaka et al. 2020), global threshold by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pruners.allocation import Allocation
from pruners.base import Pruner, register_pruner
from pruners.hooks import PruneContext
from pruners.masks import Masks, prunable_parameters


@register_pruner("dense")
@dataclass
class Dense(Pruner):
    """No pruning: all masks are ones (sparsity 0)."""

    family = "dense"
    uses_sparsity = False
    description = "dense training, the reference"

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        return {n: torch.ones_like(p) for n, p in prunable_parameters(model).items()}

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        return Masks.ones(model)


@register_pruner("random")
@dataclass
class Random(Pruner):
    """Seeded i.i.d. uniform scores: a uniformly random mask under the chosen allocation."""

    description = "random pruning at initialisation"
    paper = "Liu et al. 2022; Gadhikar, Mukherjee, Burkholz, ICML 2023"

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        g = ctx.generator(tag=1)
        return {n: torch.rand(p.shape, generator=g).to(p.device) for n, p in prunable_parameters(model).items()}


@register_pruner("magnitude")
@dataclass
class Magnitude(Pruner):
    """|θ| at initialisation; keeps the largest-magnitude initial weights."""

    description = "magnitude pruning at initialisation"
    paper = "Tanaka et al. 2020 (SynFlow paper's baseline)"

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        return {n: p.detach().abs().clone() for n, p in prunable_parameters(model).items()}
