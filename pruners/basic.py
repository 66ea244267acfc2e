"""The first pruners: dense (no pruning), random, and magnitude at initialisation.

- ``dense``: keeps every weight; the reference every other method is compared with.
- ``random``: i.i.d. uniform scores from the run's seeded generator, so with ``uniform``
  allocation every layer keeps a uniformly random subset of the target density (Liu et al. 2022;
  Gadhikar et al. ICML 2023, "Why random pruning is all we need to start sparse").
- ``magnitude``: |θ| at initialisation (the "magnitude" baseline of the SynFlow paper,
  Tanaka et al. 2020), global threshold by default; under a training schedule |θ| of the merged
  weights (the score of the presets gmp, oneshot, imp, lrr, acdc, set, rigl: ``pruners.presets``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from pruners.allocation import Allocation
from pruners.base import Pruner, register_pruner
from pruners.hooks import PruneContext, TrainState
from pruners.masks import Masks, prunable_parameters
from pruners.schedules import magnitude_scores, nested_masks


@register_pruner("dense")
@dataclass
class Dense(Pruner):
    """No pruning: all masks are ones (sparsity 0)."""

    family = "dense"
    uses_sparsity = False
    description = "dense training, the reference"

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        return {n: torch.ones_like(p) for n, p in prunable_parameters(model).items()}

    def select(self, model: nn.Module, ctx: PruneContext, density: float, allocation: Allocation,
               within: Mapping[str, torch.Tensor] | None = None) -> Masks:
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

    def training_scores(self, state: TrainState) -> dict[str, torch.Tensor]:
        """|θ| of the merged weights of the network being trained (any reparam, no copy)."""
        return magnitude_scores(state)

    def training_select(self, state: TrainState, density: float, allocation: Allocation,
                        within: Mapping[str, torch.Tensor] | None = None) -> Masks:
        return nested_masks(magnitude_scores(state), density, allocation, within)
