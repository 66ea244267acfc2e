"""Allocation: how a target sparsity is spread over layers (DESIGN.md, "Pruner = score × allocation × schedule").

An allocation turns per-layer scores and a target *density* into a number of weights to keep in each
layer; :func:`masks_from_counts` then keeps the highest-scoring weights of each layer.  Ties are
broken deterministically (stable sort: among equal scores the lower flat index is kept), so the
achieved sparsity is exact: ``global`` keeps exactly ``round(density * total)`` weights.  The kept
sets are found by selection, not by sorting (:func:`_top_flags`), with exactly the stable sort's
result: SynFlow calls the allocation 100 times per pruning, on every score of the network.

New allocations register with ``@register_allocation("name")``; they are dataclasses whose fields
are the allocation's options, set from a grid's ``allocation_args``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import torch

from pruners.masks import Masks
from pruners.registry import ConfigError, Registry

ALLOCATIONS: Registry[type["Allocation"]] = Registry("allocation")
register_allocation = ALLOCATIONS.register


def _rank_values(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` flattened in the dtype they are ranked in: float16 / bfloat16 / integer / bool become
    float32, float32 and float64 keep their own (float64 scores, SynFlow's double option, keep their
    precision)."""
    flat = scores.detach().reshape(-1)
    if not flat.is_floating_point() or flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    return flat


def stable_order(scores: torch.Tensor) -> torch.Tensor:
    """Flat indices of ``scores`` sorted descending, ties by ascending index (deterministic)."""
    return torch.sort(_rank_values(scores), descending=True, stable=True).indices


def _has_nan(flat: torch.Tensor) -> bool:
    """Whether ``flat`` holds a NaN.  One reduction without a temporary in the common case: the sum is
    NaN whenever an entry is NaN (it may also be NaN from +inf and -inf, then the exact test decides)."""
    if not flat.is_floating_point():
        return False
    total = flat.sum()
    return bool(total.isnan()) and bool(flat.isnan().any())


#: Above this many scores the threshold is found among candidates bracketed by a strided sample
#: (:func:`_bracketed`) instead of by one selection over all of them.
_SAMPLE_FROM = 1 << 18
_SAMPLE_SIZE = 1 << 14


def _first_true(flags: torch.Tensor, count: int) -> torch.Tensor:
    """Flat indices of the first ``count`` True entries of the 1-d bool ``flags`` (ascending)."""
    return flags.nonzero().reshape(-1)[:count]


def _keep_above(parts: list[torch.Tensor], k: int, t: torch.Tensor) -> list[torch.Tensor]:
    """Given t, the k-th largest value: every entry above t, then entries equal to t in concatenation
    order until k are kept (where a descending stable sort puts them)."""
    kept = [p > t for p in parts]
    missing = k - sum(int(torch.count_nonzero(f)) for f in kept)   # >= 1: t is among the first k
    for p, f in zip(parts, kept):
        if missing <= 0:
            break
        ties = _first_true(p == t, missing)
        f[ties] = True
        missing -= ties.numel()
    return kept


def _bracketed(parts: list[torch.Tensor], k: int) -> list[torch.Tensor] | torch.Tensor | None:
    """The sampled shortcut of :func:`_top_flags` for large inputs: the kept flags, or only the
    threshold t (a 0-d tensor) when it sits on a bracket bound, or None when the bracket misses.

    A strided sample of about ``_SAMPLE_SIZE`` entries, sorted, gives bounds lo < hi expected to
    bracket t, the k-th largest value, with a wide margin (± 6 binomial standard deviations of the
    sample rank).  In descending order the entries fall in five blocks, [> hi] [= hi] [strictly
    between: the candidates C] [= lo] [< lo]; counting them tells which block holds the k-th entry:
    t = hi, t = lo, or an order statistic of C found by ``torch.kthvalue`` over C alone (a few per
    cent of the entries).  In that last, usual case the flags come straight from the passes already
    made: the entries ≥ hi, plus the candidates above t, plus the first candidates equal to t (every
    entry equal to t is a candidate).  The bounds are left out of C so that a large block of equal
    values at a bound (SynFlow's −1 for pruned weights lies right below the kept scores) does not
    flood it.  Every case is decided by exact counts, so the result never depends on the sample;
    a miss (rare, e.g. data periodic with the stride) leaves the selection to the caller.
    """
    n = sum(p.numel() for p in parts)
    stride = n // _SAMPLE_SIZE
    ranked = torch.sort(torch.cat([p[::stride] for p in parts]), descending=True).values
    s = ranked.numel()
    pos = k * s / n                           # where t is expected in ``ranked``
    margin = 6.0 * math.sqrt(pos * max(0.0, 1.0 - pos / s)) + 8.0
    i_hi, i_lo = int(pos - margin), int(math.ceil(pos + margin))
    hi = ranked[i_hi] if i_hi >= 0 else None
    lo = ranked[i_lo] if i_lo < s else None
    if hi is not None and lo is not None and not bool(lo < hi):
        lo = None                             # one block of equal values spans the bracket
    if hi is None and lo is None:
        return None
    at_or_above, below_hi, positions, candidates = 0, [], [], []
    for p in parts:
        inside = None
        if hi is not None:
            inside = p < hi
            below_hi.append(inside)
            at_or_above += p.numel() - int(torch.count_nonzero(inside))
        if lo is not None:
            inside = p > lo if inside is None else (p > lo).logical_and_(inside)
        idx = inside.nonzero().reshape(-1)
        positions.append(idx)
        candidates.append(p[idx])
    if k <= at_or_above:                      # t >= hi: t = hi unless k entries exceed it
        if sum(int(torch.count_nonzero(p > hi)) for p in parts) < k:
            return hi
        return None
    r = k - at_or_above                       # the rank of t among the entries below hi
    size = sum(c.numel() for c in candidates)
    if r > size:
        if lo is not None and r <= size + sum(int(torch.count_nonzero(p == lo)) for p in parts):
            return lo
        return None
    cand = candidates[0] if len(candidates) == 1 else torch.cat(candidates)
    t = torch.kthvalue(cand, size - r + 1).values
    kept = []
    missing = r
    for i, (p, idx, c) in enumerate(zip(parts, positions, candidates)):
        f = below_hi[i].logical_not_() if hi is not None else torch.zeros(p.numel(), dtype=torch.bool,
                                                                            device=p.device)
        above_t = idx[c > t]
        f[above_t] = True
        missing -= above_t.numel()
        kept.append(f)
    for idx, c, f in zip(positions, candidates, kept):   # ties at t: concatenation order
        if missing <= 0:
            break
        ties = idx[c == t][:missing]
        f[ties] = True
        missing -= ties.numel()
    return kept


def _top_flags(parts: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Per part, the flat bool flags of the first ``k`` entries of a descending stable sort of the
    ``parts`` (1-d, one dtype) concatenated: the k highest values, ties by concatenation order.

    Found by selection, not sorting: t = the k-th largest value; every entry above t is kept, and the
    remaining places go to the entries equal to t in concatenation order (part by part, ascending
    index), which is where the stable sort puts them.  Large inputs take the sampled shortcut
    (:func:`_bracketed`), small ones (or a missed bracket) one ``torch.kthvalue`` over everything.
    Values holding a NaN (ranked above everything by ``torch.sort``) take the sort itself.
    """
    sizes = [p.numel() for p in parts]
    n = sum(sizes)
    k = max(0, min(int(k), n))
    if k == 0 or k == n:
        return [torch.full((s,), k > 0, dtype=torch.bool, device=p.device) for p, s in zip(parts, sizes)]
    if any(_has_nan(p) for p in parts):
        flat = torch.cat(parts)
        kept = torch.zeros(n, dtype=torch.bool, device=flat.device)
        kept[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
        return [f.clone() for f in kept.split(sizes)] if len(parts) > 1 else [kept]
    found = _bracketed(parts, k) if n > _SAMPLE_FROM else None
    if isinstance(found, list):
        return found
    if found is None:
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        found = torch.kthvalue(flat, n - k + 1).values
    return _keep_above(parts, k, found)


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (shape of ``scores``) of the ``k`` highest scores, ties kept by ascending flat index:
    exactly ``stable_order(scores)[:k]`` as a mask, by selection instead of a full sort (:func:`_top_flags`)."""
    return _top_flags([_rank_values(scores)], k)[0].view(scores.shape)


def masks_from_counts(scores: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> Masks:
    """Keep the ``counts[name]`` highest scores of each layer (stable ties, :func:`top_k_mask`)."""
    return Masks({name: top_k_mask(s, int(counts[name])) for name, s in scores.items()})


@dataclass
class Allocation:
    """Base class.  Subclasses implement :meth:`counts`.

    Attributes:
        dense_first: keep the first prunable layer dense (its weights count as kept).
        dense_last: keep the last prunable layer dense.
    """

    dense_first: bool = False
    dense_last: bool = False
    #: Part of the run id: bump it when a change (a new default, a fix) changes the masks it gives.
    version: ClassVar[str] = "1"

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
        if not scores:
            raise ConfigError("the model has no prunable layers (weights of Linear / Conv modules), so there is "
                              "nothing to prune; use pruner 'dense' or a model with Linear / Conv layers")
        return self._masks(scores, density)

    def _masks(self, scores: Mapping[str, torch.Tensor], density: float) -> Masks:
        """:meth:`masks` after its checks: the counts, then the top scores of each layer.  An allocation
        that can build the masks more directly than count-then-select overrides this."""
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

    def _select(self, scores: Mapping[str, torch.Tensor], density: float) \
            -> tuple[dict[str, int], list[str], torch.dtype, list[torch.Tensor]]:
        """The ``budget`` highest free scores network-wide, ties by (layer order, flat index).

        Returns the counts fixed by dense_first / dense_last, the free layers, the common dtype the
        free scores are ranked in, and per free layer the flat bool flags of its kept scores (on the
        first free layer's device).  The kept set is the first ``budget`` entries of a descending
        stable sort of all free scores concatenated, found by selection: t = the budget-th largest
        score; everything above t is kept, and the remaining places go to the scores equal to t in
        concatenation order (layer by layer, ascending flat index), where the stable sort puts them.
        """
        fixed, budget, free = self._budget(scores, density)
        if not free:
            return fixed, free, torch.float32, []
        # on the scores' own device (a GPU selects SynFlow's 100 rounds fast), in the widest score
        # dtype so float64 scores are not rounded into ties
        device = scores[free[0]].device
        dtype = torch.promote_types(torch.float32, functools.reduce(
            torch.promote_types, (scores[n].dtype for n in free)))
        parts = [scores[n].detach().reshape(-1).to(device=device, dtype=dtype) for n in free]
        return fixed, free, dtype, _top_flags(parts, budget)

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        fixed, free, _, kept = self._select(scores, density)
        counts = dict(fixed)
        counts.update({n: int(torch.count_nonzero(m)) for n, m in zip(free, kept)})
        return counts

    def _masks(self, scores: Mapping[str, torch.Tensor], density: float) -> Masks:
        """The global kept set split by layer, without ranking each layer again.

        Equal to :meth:`counts` followed by :func:`masks_from_counts` (the layer's top ``count``
        scores in its own ranking dtype, :func:`_rank_values`) whenever that dtype orders the layer's
        scores as the common dtype does: always for floating-point scores (widening is exact).
        Integer scores ranked in float64 beside float64 layers take the per-layer path instead.
        """
        fixed, free, dtype, kept = self._select(scores, density)
        if dtype != torch.float32 and any(not scores[n].is_floating_point() for n in free):
            counts = dict(fixed)
            counts.update({n: int(torch.count_nonzero(m)) for n, m in zip(free, kept)})
            return masks_from_counts(scores, counts)
        flags = dict(zip(free, kept))
        return Masks({name: (flags[name].to(s.device).view(s.shape) if name in flags else
                             torch.ones(tuple(s.shape), dtype=torch.bool, device=s.device))
                      for name, s in scores.items()})


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


# ------------------------------------------------------------------------------------------------
# Layer-wise ratio allocations: ERK, ER, balanced, pyramidal, custom.
#
# Each of these first computes a real-valued *density per layer* from a formula, then turns the
# densities into integer counts with largest-remainder rounding (:func:`apportion`) so that the
# counts sum to exactly ``round(density · N)`` — the achieved sparsity is exact, as for ``global``.

def apportion(real: Mapping[str, float], caps: Mapping[str, int], total: int) -> dict[str, int]:
    """Integer counts close to ``real`` that sum to ``total`` (largest-remainder / Hamilton rounding).

    Each count lies in ``[0, caps[name]]``.  Counts start at ``floor(real)``; the missing units go to
    the layers with the largest fractional parts (ties: earlier layer first), skipping full layers.
    Deterministic, so the same scores and density always give the same counts.
    """
    names = list(real)
    counts = {n: min(caps[n], max(0, int(real[n]))) for n in names}
    missing = total - sum(counts.values())
    if missing < 0 or missing > sum(caps[n] - counts[n] for n in names):
        raise ConfigError(f"cannot apportion {total} weights over layers of {sum(caps.values())} weights; "
                          "the target density is out of range")
    order = sorted(names, key=lambda n: (-(real[n] - int(real[n])), names.index(n)))
    while missing > 0:
        progressed = False
        for n in order:
            if missing == 0:
                break
            if counts[n] < caps[n]:
                counts[n] += 1
                missing -= 1
                progressed = True
        if not progressed:  # pragma: no cover - excluded by the capacity check above
            break
    return counts


def _layer_dims(shape: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]]:
    """(n_out, n_in, kernel dims) of a Linear ``(out, in)`` or Conv ``(out, in, *kernel)`` weight."""
    if len(shape) < 2:
        return int(shape[0]) if shape else 1, 1, ()
    return int(shape[0]), int(shape[1]), tuple(int(k) for k in shape[2:])


def _densities_to_counts(alloc: "Allocation", scores: Mapping[str, torch.Tensor], density: float,
                         layer_density) -> dict[str, int]:
    """Shared driver: dense_first/last fixed, ``layer_density(free, budget)`` → densities → exact counts."""
    fixed, budget, free = alloc._budget(scores, density)
    counts = dict(fixed)
    if not free:
        return counts
    numel = {n: scores[n].numel() for n in free}
    dens = layer_density({n: tuple(scores[n].shape) for n in free}, budget)
    counts.update(apportion({n: dens[n] * numel[n] for n in free}, numel, budget))
    return counts


def _solve_scaled(raw: Mapping[str, float], numel: Mapping[str, int], budget: int) -> dict[str, float]:
    """Densities ε·raw[l], with layers whose density would exceed 1 made dense and ε re-solved.

    This is the dense-layer fallback of RigL's ``get_sparsities_erdos_renyi`` (Evci et al. 2020,
    github google-research/rigl, ``rigl/sparse_utils.py``): while the largest ε·raw exceeds 1, every
    layer with the largest raw value is marked dense and ε = (budget − Σ_dense n) / Σ_free raw·n is
    solved again.
    """
    dense: set[str] = set()
    while True:
        free = [n for n in raw if n not in dense]
        rhs = budget - sum(numel[n] for n in dense)
        if not free:
            return {n: 1.0 for n in raw}
        divisor = sum(raw[n] * numel[n] for n in free)
        eps = rhs / divisor if divisor > 0 else 0.0
        top = max(raw[n] for n in free)
        if eps * top > 1.0:
            dense.update(n for n in free if raw[n] == top)
            continue
        return {n: (1.0 if n in dense else eps * raw[n]) for n in raw}


@register_allocation("erk")
@dataclass
class ERKAllocation(Allocation):
    """Erdős–Rényi-kernel (Evci et al. 2020, RigL, §3 "Sparsity distribution"; Mocanu et al. 2018 for ER).

    Layer l gets density ε · raw_l with raw_l = ((n_in + n_out + k_h + k_w) / (n_in · n_out · k_h · k_w))^power
    for a convolution and ((n_in + n_out) / (n_in · n_out))^power for a linear layer (the sum of the
    weight shape over its product), ε chosen so that the network keeps exactly the target number of
    weights.  Layers whose density would exceed 1 are made dense and ε is re-solved (RigL code's
    fallback, :func:`_solve_scaled`).  ``power`` is RigL's ``erk_power_scale`` (default 1).
    """

    power: float = 1.0
    kernel: ClassVar[bool] = True

    def validate(self) -> None:
        if not (isinstance(self.power, (int, float)) and 0.0 <= self.power <= 10.0):
            raise ConfigError(f"allocation {self.registry_name!r} power {self.power!r} is outside [0, 10]; "
                              "use 1 (the RigL default)")

    def raw(self, shape: tuple[int, ...]) -> float:
        n_out, n_in, kernel = _layer_dims(shape)
        dims = (n_in, n_out, *kernel) if self.kernel else (n_in, n_out)
        return (sum(dims) / math.prod(dims)) ** self.power

    def layer_densities(self, shapes: Mapping[str, tuple[int, ...]], budget: int) -> dict[str, float]:
        raw = {n: self.raw(s) for n, s in shapes.items()}
        return _solve_scaled(raw, {n: math.prod(s) for n, s in shapes.items()}, budget)

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        return _densities_to_counts(self, scores, density, self.layer_densities)


@register_allocation("er")
@dataclass
class ERAllocation(ERKAllocation):
    """Erdős–Rényi (Mocanu et al. 2018, SET; RigL's ``erdos_renyi``): like ``erk`` without the kernel
    term, raw_l = (n_in + n_out) / (n_in · n_out) for every layer (convolutions use their channel
    counts only), with the same dense-layer fallback."""

    kernel: ClassVar[bool] = False


@register_allocation("balanced")
@dataclass
class BalancedAllocation(Allocation):
    """Balanced (Gadhikar, Mukherjee, Burkholz, ICML 2023, "Why random pruning is all we need to start
    sparse"; code github RelationalML/sparse_to_sparse, ``STR/main.py`` ``er_sparse_method == 'balanced'``):
    every layer keeps the same number of weights X = density · N / L, and a layer with at most X weights
    is dense.

    ``redistribute = True`` (default, our choice): the weights a dense layer cannot take are shared
    equally by the remaining layers (X re-solved until no free layer is full), so the network keeps
    exactly the target; ``False`` reproduces the reference code, which clips such layers to density 1
    and so keeps fewer weights than the target when a layer is small.
    """

    redistribute: bool = True

    def layer_densities(self, shapes: Mapping[str, tuple[int, ...]], budget: int) -> dict[str, float]:
        numel = {n: math.prod(s) for n, s in shapes.items()}
        if not self.redistribute:
            x = budget / len(numel)
            return {n: min(1.0, x / numel[n]) for n in numel}
        dense: set[str] = set()
        while True:
            free = [n for n in numel if n not in dense]
            if not free:
                return {n: 1.0 for n in numel}
            x = (budget - sum(numel[n] for n in dense)) / len(free)
            full = [n for n in free if numel[n] <= x]
            if not full:
                return {n: (1.0 if n in dense else x / numel[n]) for n in numel}
            dense.update(full)

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        if self.redistribute:
            return _densities_to_counts(self, scores, density, self.layer_densities)
        fixed, budget, free = self._budget(scores, density)
        counts = dict(fixed)
        dens = self.layer_densities({n: tuple(scores[n].shape) for n in free}, budget)
        counts.update({n: int(round(dens[n] * scores[n].numel())) for n in free})
        return counts


def pyramidal_ratio(numel: list[int], budget: float) -> float:
    """The r ∈ [0, 1] with Σ_l numel[l] · r^l = budget (l = 1 … L), by bisection (the sum is increasing)."""
    def kept(r: float) -> float:
        return sum(n * r ** (i + 1) for i, n in enumerate(numel))

    if budget <= 0:
        return 0.0
    if budget >= sum(numel):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if kept(mid) < budget:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@register_allocation("pyramidal")
@dataclass
class PyramidalAllocation(Allocation):
    """Pyramidal (Gadhikar, Mukherjee, Burkholz, ICML 2023; code github RelationalML/sparse_to_sparse,
    ``STR/main.py`` ``er_sparse_method == 'pyramidal'`` and ``ER_DST/sparselearning/core.py``
    ``get_pyramid_sparsity``): the l-th prunable layer in module order (l = 1 … L) has density r^l, with
    r ∈ (0, 1) the root of Σ_l n_l r^l = density · N (the reference code takes the real root in (0, 1)
    of the same polynomial with ``np.roots``; we bisect, the polynomial being increasing on [0, 1]).
    Densities decrease geometrically towards the output.
    """

    def layer_densities(self, shapes: Mapping[str, tuple[int, ...]], budget: int) -> dict[str, float]:
        names = list(shapes)
        r = pyramidal_ratio([math.prod(shapes[n]) for n in names], budget)
        return {n: r ** (i + 1) for i, n in enumerate(names)}

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        return _densities_to_counts(self, scores, density, self.layer_densities)


@register_allocation("custom")
@dataclass
class CustomAllocation(Allocation):
    """A user-given density per layer: ``densities = { "features.0.weight" = 0.5, ... }``.

    Keys are prunable parameter names or their module names (``"features.0"`` stands for
    ``"features.0.weight"``).  Named layers keep exactly ``round(d · n)`` weights.  Layers not named
    (and not made dense by ``dense_first`` / ``dense_last``) share what is left of the target budget
    uniformly (exact largest-remainder counts), so the overall sparsity is the target; if that needs a
    density outside [0, 1] it is a ConfigError.  When every layer is named, the map decides and must
    agree with the target sparsity to within rounding (one weight per layer).
    """

    densities: dict = field(default_factory=dict)

    def validate(self) -> None:
        if not isinstance(self.densities, dict):
            raise ConfigError("allocation 'custom' densities must be a table {layer = density}")
        for layer, d in self.densities.items():
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= float(d) <= 1.0 \
                    or math.isnan(float(d)):
                raise ConfigError(f"allocation 'custom' density {d!r} for layer {layer!r} is outside [0, 1]; "
                                  "give a fraction of weights to keep")

    def resolve(self, names: list[str]) -> dict[str, float]:
        """The map keyed by parameter names; an unknown layer is a ConfigError naming it."""
        out: dict[str, float] = {}
        for layer, d in self.densities.items():
            name = layer if layer in names else f"{layer}.weight"
            if name not in names:
                from pruners.registry import did_you_mean
                raise ConfigError(f"allocation 'custom' names layer {layer!r}, which is not a prunable layer of "
                                  f"the model{did_you_mean(layer, names)}; valid: {', '.join(names[:6])}"
                                  f"{' …' if len(names) > 6 else ''}")
            if name in out:
                raise ConfigError(f"allocation 'custom' names layer {name!r} twice; keep one entry")
            out[name] = float(d)
        return out

    def counts(self, scores: Mapping[str, torch.Tensor], density: float) -> dict[str, int]:
        self.validate()
        names = list(scores)
        given = self.resolve(names)
        numel = {n: scores[n].numel() for n in names}
        dense = self.dense_layers(names)
        for n in dense:
            if n in given and given[n] != 1.0:
                raise ConfigError(f"allocation 'custom' gives {n!r} density {given[n]} but dense_first / "
                                  "dense_last keeps it dense; drop one of the two")
            given[n] = 1.0
        target = int(round(density * sum(numel.values())))
        counts = {n: int(round(d * numel[n])) for n, d in given.items()}
        rest = [n for n in names if n not in given]
        left = target - sum(counts.values())
        if not rest:
            if abs(left) > len(names):
                raise ConfigError(f"allocation 'custom' keeps {1 - sum(counts.values()) / sum(numel.values()):.4g} "
                                  f"sparsity but the target is {1 - density:.4g}; leave a layer unspecified or "
                                  "set the run's sparsity to the map's")
            return {n: counts[n] for n in names}
        rest_total = sum(numel[n] for n in rest)
        if not 0 <= left <= rest_total:
            need = left / rest_total if rest_total else float("inf")
            raise ConfigError(f"allocation 'custom': the unspecified layers would need density {need:.4g} to meet "
                              f"the target sparsity {1 - density:.4g}; change the map or the sparsity")
        d = left / rest_total
        counts.update(apportion({n: d * numel[n] for n in rest}, {n: numel[n] for n in rest}, left))
        return {n: counts[n] for n in names}
