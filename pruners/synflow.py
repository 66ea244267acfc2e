"""SynFlow: iterative synaptic flow pruning (Tanaka, Kunin, Yamins, Ganguli, NeurIPS 2020).

Data-free score (paper Eq. 2 and Algorithm 1): replace every parameter by its absolute value
(biases and batch-norm parameters and buffers included, as in the public code, github
ganguli-lab/Synaptic-Flow ``Pruners/pruners.py``), feed one all-ones input of the task's input shape,
let R = Σ outputs (the "synaptic flow", 1ᵀ (Π_l |θ^[l]|) 1 for a linear chain) and score each weight
S = |θ ⊙ ∂R/∂θ|.  For a bias-free linear network this is the weight times the sum of the products of
|weights| of every input→output path through it.

Iterative schedule (Algorithm 1): for e = 0 … E−1, score the *masked* network, then keep density
d^{(e+1)/E} (exponential schedule) under the chosen allocation; E = 100 by default.  Masked weights
score 0 and are ranked below every kept weight (we give them −1), so the masks are nested as in the
paper unless a layer-wise allocation asks a layer for more weights than it has left.

Choices:

* Batch norm is in eval mode during scoring (the reference prune loop's default), so the running
  statistics (also replaced by their absolute values) are used and nothing is updated.
* Precision: float32 (``double = False``, the reference's setting); ``double = True`` evaluates the flow
  in float64 — the reference has this switch commented out — for deep networks whose path products
  overflow float32.  float64 scores are divided by their maximum so the float32 ranking in the
  allocation cannot overflow.
* Nothing of the model changes: the scoring runs on |θ| copies through ``torch.func.functional_call``,
  and the model's modes are restored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from pruners.allocation import Allocation, GlobalAllocation, UniformAllocation
from pruners.base import Pruner, checked_scores, register_pruner
from pruners.hooks import PruneContext
from pruners.masks import Masks
from pruners.registry import ConfigError
from pruners.snip import require_prunable, scoring_state


@register_pruner("synflow")
@dataclass
class SynFlow(Pruner):
    """Iterative SynFlow: |θ ⊙ ∂R/∂θ| with R the all-ones flow of |θ|, E rounds of d^{(e+1)/E}.

    Hyperparameters:
        iterations: E, the number of score-and-prune rounds (paper: 100; 1 = one-shot SynFlow).
        double: compute the flow in float64 instead of float32.
        counting: ``exact`` (each round keeps round(d_e · N) weights through the allocation, ties by
            index) or ``reference`` (the public code's count: prune the k = ⌊(1 − d_e) N⌋ lowest scores
            and every score tied with the k-th, globally or per layer; allocation global or uniform
            only).  The two differ by a weight in some rounds, which is why the exact masks overlap
            the reference's 94–95 %; ``reference`` reproduces them bit for bit
            (tests/pruners/test_synflow_reference.py).
    """

    iterations: int = 100
    double: bool = False
    counting: str = "exact"

    needs_data = False
    description = "SynFlow iterative synaptic-flow pruning (data-free)"
    paper = ("Tanaka, Kunin, Yamins, Ganguli. Pruning neural networks without any data by iteratively "
             "conserving synaptic flow. NeurIPS 2020")
    url = "https://arxiv.org/abs/2006.05467"

    def validate(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"pruner 'synflow' iterations {self.iterations} must be >= 1 (paper: 100)")
        if self.counting not in ("exact", "reference"):
            raise ConfigError(f"pruner 'synflow' counting {self.counting!r} is unknown; choose 'exact' or 'reference'")

    def check_allocation(self, allocation: Allocation) -> None:
        """``counting = "reference"`` has the public code's two scopes only: global and per layer."""
        if self.counting == "reference" and not isinstance(allocation, (GlobalAllocation, UniformAllocation)):
            raise ConfigError("pruner 'synflow' counting = 'reference' follows the public code's global or "
                              "per-layer scope; use allocation 'global' or 'uniform', or counting = 'exact'")

    def abs_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """|θ| of the prunable weights, in float64 with ``double``: computed once by
        :meth:`initial_masks` and shared by its rounds, since the weights do not change between them."""
        dtype = torch.float64 if self.double else None
        out = {}
        for name, p in require_prunable(model, "synflow").items():
            v = p.detach().abs()
            out[name] = v.to(dtype) if dtype is not None and v.is_floating_point() else v
        return out

    def masked_scores(self, model: nn.Module, ctx: PruneContext,
                      masks: Mapping[str, torch.Tensor] | None = None, *,
                      abs_weights: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One SynFlow score of the network masked by ``masks`` (None = dense).

        ``abs_weights``: :meth:`abs_weights` of this model, when the caller has them already.  The
        returned score tensors are new (nothing else refers to them).
        """
        params = require_prunable(model, "synflow")
        absolute = self.abs_weights(model) if abs_weights is None else abs_weights
        dtype = torch.float64 if self.double else None
        # copies of |θ| (parameters, floating buffers) and of the other buffers, so the model's own
        # tensors are never written; a prunable weight is |θ| · mask (a new tensor) or, unmasked, a new
        # leaf sharing |θ|'s storage (autograd does not write its leaves)
        state: dict[str, torch.Tensor] = {}
        for name, p in model.named_parameters():
            if name in params:
                v = absolute[name]
                if masks is not None and name in masks:
                    # a float copy of the mask: multiplying by it is several times faster than by bools
                    v = v * masks[name].to(device=v.device, dtype=v.dtype)
                state[name] = v.detach().requires_grad_(True)
                continue
            v = p.detach().abs()
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            if masks is not None and name in masks:
                v.mul_(masks[name].to(device=v.device, dtype=v.dtype))
            state[name] = v
        for name, b in model.named_buffers():
            v = b.detach()
            if v.is_floating_point():
                v = v.abs()
                if dtype is not None:
                    v = v.to(dtype)
            else:
                v = v.clone()
            state[name] = v
        first = next(iter(params.values()))
        x = torch.ones((1, *ctx.input_shape), dtype=dtype or first.dtype, device=first.device)
        with scoring_state(model, train=False):
            out = torch.func.functional_call(model, state, (x,))
            flow = out.sum()
            leaves = [state[n] for n in params]
            grads = torch.autograd.grad(flow, leaves, allow_unused=True)
        del state, out, flow
        scores = {}
        tops = []
        for (name, leaf), g in zip(zip(params, leaves), grads):
            s = torch.zeros_like(leaf.detach()) if g is None else torch.mul(g, leaf.detach()).abs_()
            # scores are >= 0 or NaN, so one max (which propagates NaN) tells whether all are finite
            top = float(s.max()) if s.numel() else 0.0
            if not math.isfinite(top):
                raise ConfigError(f"pruner 'synflow': the synaptic flow overflowed at {name!r}; set pruner "
                                  "args double = true")
            scores[name] = s
            tops.append(top)
        if self.double:
            top = max(tops)
            if top > 0:
                scores = {n: s.div_(top) for n, s in scores.items()}
            scores = {n: s.to(params[n].dtype) for n, s in scores.items()}
        return scores

    def scores(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """One-shot SynFlow scores of the dense network (the first round of :meth:`initial_masks`)."""
        return self.masked_scores(model, ctx, None)

    def select(self, model: nn.Module, ctx: PruneContext, density: float, allocation: Allocation,
               within: Mapping[str, torch.Tensor] | None = None) -> Masks:
        """Algorithm 1: E rounds of (score the masked network, keep density d_0·(d/d_0)^{(e+1)/E}).

        d_0 = 1 at initialisation; under a training schedule that nests (``within``, e.g. gradual) the
        rounds start from the current masks and d_0 is their density.  Already-pruned weights get
        score −1, below every kept weight (scores are ≥ 0).  |θ| is computed once for all rounds.  With
        this class's own :meth:`masked_scores`, whose scores are new tensors of exactly the prunable
        weights' names and shapes and checked finite, the generic ``checked_scores`` runs on the first
        round only and the −1 is written in place; an overriding subclass gets both checks on every
        round and its tensors are not written.
        """
        if self.counting == "reference":
            return self._reference_select(model, ctx, density, allocation, within)
        own = type(self).masked_scores is SynFlow.masked_scores
        absolute = self.abs_weights(model) if own else None
        masks: Masks | None = Masks({n: m for n, m in within.items()}) if within is not None else None
        d0 = masks.density() if masks is not None else 1.0
        for e in range(self.iterations):
            scores = (self.masked_scores(model, ctx, masks, abs_weights=absolute) if own
                      else self.masked_scores(model, ctx, masks))
            if e == 0 or not own:
                scores = checked_scores(self, scores, model)
            if masks is not None:
                if own:
                    scores = {n: _minus_one_where_pruned(s, masks[n]) for n, s in scores.items()}
                else:
                    scores = {n: torch.where(masks[n].to(s.device), s, -1.0) for n, s in scores.items()}
            target = density ** ((e + 1) / self.iterations) if within is None else \
                d0 * (density / d0) ** ((e + 1) / self.iterations)
            masks = allocation.masks(scores, target)
        assert masks is not None
        if within is not None:
            masks = Masks({n: m & within[n].to(m.device) for n, m in masks.items()})
        return masks


    def _reference_select(self, model: nn.Module, ctx: PruneContext, density: float, allocation: Allocation,
                          within: Mapping[str, torch.Tensor] | None) -> Masks:
        """Algorithm 1 counted as ganguli-lab/Synaptic-Flow counts (``Pruners/pruners.py``, ``mask``): each
        round keeps every weight scoring above the k-th smallest score, k = int((1 − d_e) · N), over all
        prunable weights (global) or per layer (uniform); pruned weights score 0 and stay pruned."""
        self.check_allocation(allocation)
        layer = isinstance(allocation, UniformAllocation)
        masks = {n: torch.as_tensor(m).clone() for n, m in within.items()} if within is not None else None
        d0 = Masks(masks).density() if masks is not None else 1.0
        for e in range(self.iterations):
            scores = checked_scores(self, self.masked_scores(model, ctx, masks), model)
            d_e = density ** ((e + 1) / self.iterations) if within is None else \
                d0 * (density / d0) ** ((e + 1) / self.iterations)
            groups = [[n] for n in scores] if layer else [list(scores)]
            new = dict(masks) if masks is not None else {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
            for names in groups:
                flat = torch.cat([scores[n].reshape(-1) for n in names])
                k = int((1.0 - d_e) * flat.numel())
                if k >= 1:
                    threshold = torch.kthvalue(flat.cpu(), k).values.to(flat.device)
                    new.update({n: scores[n] > threshold for n in names})
            masks = new
        return Masks(masks)


def _minus_one_where_pruned(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``torch.where(mask, scores, -1)``, written into ``scores`` (finite, ≥ 0) as s·m + (m − 1) with m
    the float mask: s·1 + 0 = s and s·0 − 1 = −1 exactly, and arithmetic on a float mask runs several
    times faster than ``masked_fill_`` / ``where`` on a bool one."""
    m = mask.to(device=scores.device, dtype=scores.dtype, copy=True)
    return scores.mul_(m).add_(m.sub_(1.0))
