"""Allocation: how a target sparsity is spread over layers (DESIGN.md, "Pruner = score × allocation × schedule").

An allocation turns per-layer scores and a target *density* into a number of weights to keep in each
layer; :func:`masks_from_counts` then keeps the highest-scoring weights of each layer.  Ties are
broken deterministically (stable sort: among equal scores the lower flat index is kept), so the
achieved sparsity is exact: ``global`` keeps exactly ``round(density * total)`` weights.

New allocations register with ``@register_allocation("name")``; they are dataclasses whose fields
are the allocation's options, set from a grid's ``allocation_args``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from pruners.masks import Masks
from pruners.registry import ConfigError, Registry

ALLOCATIONS: Registry[type["Allocation"]] = Registry("allocation")
register_allocation = ALLOCATIONS.register


def stable_order(scores: torch.Tensor) -> torch.Tensor:
    """Flat indices of ``scores`` sorted descending, ties by ascending index (deterministic)."""
    return torch.sort(scores.detach().reshape(-1).float(), descending=True, stable=True).indices


def masks_from_counts(scores: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> Masks:
    """Keep the ``counts[name]`` highest scores of each layer (stable ties)."""
    out = {}
    for name, s in scores.items():
        k = int(counts[name])
        flat = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
        if k > 0:
            flat[stable_order(s)[:k]] = True
        out[name] = flat.view_as(s)
    return Masks(out)


@dataclass
class Allocation:
    """Base class.  Subclasses implement :meth:`counts`.

    Attributes:
        dense_first: keep the first prunable layer dense (its weights count as kept).
        dense_last: keep the last prunable layer dense.
    """

    dense_first: bool = False
    dense_last: bool = False

    def validate(self) -> None:
        pass

    def dense_layers(self, names: list[str]) -> set[str]:
        keep = set()
        if self.dense_first and names:
            keep.add(names[0])
        if self.dense_last and names:
            keep.add(names[-1])
        return keep

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        raise NotImplementedError

    def masks(self, scores: Mapping[str, torch.Tensor], density: float) -> Masks:
        """The masks that keep ``density`` of all weights under this allocation."""
        if not 0.0 <= density <= 1.0:
            raise ConfigError(f"density {density} is outside [0, 1]; sparsity must lie in [0, 1)")
        return masks_from_counts(scores, self.counts(scores, density))

    # helpers ----------------------------------------------------------------------------------
    def _budget(self, scores: Mapping[str, torch.Tensor], density: float) -> tuple[dict[str, int], int, list[str]]:
        """Counts fixed by dense_first/last, the remaining budget, and the free layers."""
        names = list(scores)
        total = sum(s.numel() for s in scores.values())
        target = int(round(density * total))
        fixed = {n: scores[n].numel() for n in self.dense_layers(names)}
        budget = target - sum(fixed.values())
        if budget < 0:
            raise ConfigError(f"keeping {sorted(fixed)} dense already exceeds the target density {density:.4g}; "
                              "lower the sparsity or drop dense_first / dense_last")
        return fixed, budget, [n for n in names if n not in fixed]


@register_allocation("global")
@dataclass
class GlobalAllocation(Allocation):
    """One threshold over all layers: keep the ``round(density·N)`` highest scores network-wide.

    Scores of different layers must be comparable (SNIP, GraSP, SynFlow and global magnitude are
    defined this way in their papers).
    """

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        fixed, budget, free = self._budget(scores, density)
        counts = dict(fixed)
        if not free:
            return counts
        flat = torch.cat([scores[n].detach().reshape(-1).float().cpu() for n in free])
        owner = torch.cat([torch.full((scores[n].numel(),), i, dtype=torch.long) for i, n in enumerate(free)])
        kept_owner = owner[stable_order(flat)[:budget]]
        per = torch.bincount(kept_owner, minlength=len(free))
        counts.update({n: int(per[i]) for i, n in enumerate(free)})
        return counts


@register_allocation("uniform")
@dataclass
class UniformAllocation(Allocation):
    """Every free layer keeps the same fraction of its weights (rounded per layer).

    With dense_first / dense_last the remaining layers share the rest of the budget uniformly, so
    the overall density still meets the target.
    """

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        fixed, budget, free = self._budget(scores, density)
        free_total = sum(scores[n].numel() for n in free)
        d = budget / free_total if free_total else 0.0
        counts = dict(fixed)
        counts.update({n: int(round(d * scores[n].numel())) for n in free})
        return counts
