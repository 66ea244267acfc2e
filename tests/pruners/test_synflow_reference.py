"""Iterative SynFlow against a straightforward reference (the original implementation, kept here):
scores and every round's masks must be bit-identical after the speed-ups (|θ| computed once, the −1 of
pruned weights written in place, selection instead of sorting in the allocation)."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from pruners import ALLOCATIONS, PRUNERS, PruneContext
from pruners.base import density_of, prunable_parameters
from pruners.registry import ConfigError, build_config
from pruners.snip import scoring_state
from pruners.synflow import SynFlow


def reference_scores(model: nn.Module, input_shape: tuple[int, ...], masks=None, double: bool = False):
    """The original ``SynFlow.masked_scores``: fresh |θ| (masked by multiplication) every call."""
    params = prunable_parameters(model)
    dtype = torch.float64 if double else None
    state = {}
    for name, p in model.named_parameters():
        v = p.detach().abs()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        if masks is not None and name in masks:
            v = v * masks[name].to(device=v.device, dtype=v.dtype)
        state[name] = v.requires_grad_(name in params)
    for name, b in model.named_buffers():
        v = b.detach().clone()
        if v.is_floating_point():
            v = v.abs()
            if dtype is not None:
                v = v.to(dtype)
        state[name] = v
    first = next(iter(params.values()))
    x = torch.ones((1, *input_shape), dtype=dtype or first.dtype)
    with scoring_state(model, train=False):
        flow = torch.func.functional_call(model, state, (x,)).sum()
        leaves = [state[n] for n in params]
        grads = torch.autograd.grad(flow, leaves, allow_unused=True)
    scores = {}
    for (name, leaf), g in zip(zip(params, leaves), grads):
        s = torch.zeros_like(leaf) if g is None else (g * leaf).detach().abs()
        assert bool(torch.isfinite(s).all())
        scores[name] = s
    if double:
        top = max(float(s.max()) for s in scores.values())
        if top > 0:
            scores = {n: s / top for n, s in scores.items()}
        scores = {n: s.to(params[n].dtype) for n, s in scores.items()}
    return scores


def reference_masks(scores: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, torch.Tensor]:
    """The original per-layer masks: a full descending stable sort of each layer."""
    out = {}
    for name, s in scores.items():
        flat = torch.zeros(s.numel(), dtype=torch.bool)
        if counts[name] > 0:
            flat[torch.sort(s.reshape(-1).float(), descending=True, stable=True).indices[:counts[name]]] = True
        out[name] = flat.view_as(s)
    return out


def reference_counts(allocation, scores: dict[str, torch.Tensor], density: float) -> dict[str, int]:
    """The original global counts (one stable sort of all scores); other allocations: their own counts."""
    if allocation.registry_name != "global":
        return allocation.counts(scores, density)
    fixed, budget, free = allocation._budget(scores, density)
    counts = dict(fixed)
    dtype = torch.promote_types(torch.float32, functools.reduce(torch.promote_types, (scores[n].dtype for n in free)))
    flat = torch.cat([scores[n].reshape(-1).to(dtype) for n in free])
    owner = torch.cat([torch.full((scores[n].numel(),), i, dtype=torch.long) for i, n in enumerate(free)])
    per = torch.bincount(owner[torch.sort(flat, descending=True, stable=True).indices[:budget]], minlength=len(free))
    counts.update({n: int(per[i]) for i, n in enumerate(free)})
    return counts


def reference_synflow(model, input_shape, sparsity, allocation, iterations, double=False):
    """The original Algorithm 1 loop; returns every round's masks."""
    density = density_of(sparsity)
    masks, rounds = None, []
    for e in range(iterations):
        scores = reference_scores(model, input_shape, masks, double)
        if masks is not None:
            scores = {n: torch.where(masks[n], s, torch.full_like(s, -1.0)) for n, s in scores.items()}
        d = density ** ((e + 1) / iterations)
        masks = reference_masks(scores, reference_counts(allocation, scores, d))
        rounds.append(masks)
    return rounds


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def linear_chain() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32, bias=False), nn.ReLU(), nn.Linear(32, 4))


def ctx(input_shape) -> PruneContext:
    return PruneContext(seed=0, batches=None, loss_fn=None, device=torch.device("cpu"), num_classes=10,
                        input_shape=input_shape, prune_batch_size=8)


CASES = [(conv_net, (3, 8, 8)), (linear_chain, (12,))]


@pytest.mark.parametrize("make,shape", CASES)
@pytest.mark.parametrize("double", [False, True])
def test_masked_scores_bit_identical(make, shape, double):
    model = make()
    pruner = build_config(PRUNERS.get("synflow"), {"double": double}, "synflow")
    dense = pruner.masked_scores(model, ctx(shape))
    ref = reference_scores(model, shape, None, double)
    assert all(torch.equal(dense[n], ref[n]) for n in ref)
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(p.shape, generator=g) < 0.6 for n, p in prunable_parameters(model).items()}
    cached = pruner.abs_weights(model)
    for got in (pruner.masked_scores(model, ctx(shape), masks),
                pruner.masked_scores(model, ctx(shape), masks, abs_weights=cached),
                pruner.masked_scores(model, ctx(shape), masks, abs_weights=cached)):
        ref = reference_scores(model, shape, masks, double)
        assert list(got) == list(ref)
        assert all(torch.equal(got[n], ref[n]) for n in ref)


class _Tracking(SynFlow):
    """A subclass that overrides masked_scores (old signature): it must still work, unmodified."""

    def masked_scores(self, model, ctx, masks=None):
        return super().masked_scores(model, ctx, masks)


@pytest.mark.parametrize("make,shape", CASES)
@pytest.mark.parametrize("allocation", ["global", "erk", "uniform"])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("sparsity", [0.95, 0.995])   # at 0.995 the −1 of pruned weights decides ERK masks
def test_iterative_masks_bit_identical(make, shape, allocation, double, sparsity):
    model = make()
    alloc = build_config(ALLOCATIONS.get(allocation), {}, allocation)
    ref = reference_synflow(model, shape, sparsity, alloc, 6, double)
    for pruner in (SynFlow(iterations=6, double=double), _Tracking(iterations=6, double=double)):
        seen = []
        orig = alloc.masks

        def spy(scores, density, orig=orig):
            m = orig(scores, density)
            seen.append(m)
            return m

        alloc.masks = spy  # type: ignore[method-assign]
        try:
            final = pruner.initial_masks(model, ctx(shape), sparsity, alloc)
        finally:
            del alloc.masks
        assert len(seen) == len(ref)
        for got, want in zip(seen, ref):
            assert all(torch.equal(got[n], want[n]) for n in want)
        assert all(torch.equal(final[n], ref[-1][n]) for n in ref[-1])


def test_overflow_still_raises():
    model = linear_chain()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e30)
    pruner = SynFlow(iterations=2)
    with pytest.raises(ConfigError, match="double = true"):
        pruner.initial_masks(model, ctx((12,)), 0.5, ALLOCATIONS.get("global")())


def test_checked_scores_still_applies_to_overrides():
    class Bad(SynFlow):
        def masked_scores(self, model, ctx, masks=None):
            s = super().masked_scores(model, ctx, masks)
            if masks is not None:
                s[next(iter(s))][0] = float("nan")
            return s

    with pytest.raises(ConfigError, match="NaN"):
        Bad(iterations=3).initial_masks(linear_chain(), ctx((12,)), 0.5, ALLOCATIONS.get("global")())


# --- the public code's own masks (issue 19, item 5) --------------------------------------------------
def _ref_model(seed: int, dims: list[int]) -> nn.Module:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


REFERENCE = __import__("json").loads(
    (__import__("pathlib").Path(__file__).with_name("data") / "synflow_reference.json").read_text())


@pytest.mark.parametrize("case", sorted(REFERENCE["cases"]))
def test_reference_counting_gives_the_public_codes_masks_bit_for_bit(case):
    """Masks of ganguli-lab/Synaptic-Flow's own prune loop, run once in a throwaway folder (numbers and
    source in data/synflow_reference.json), against ``counting = "reference"``; ``exact`` differs."""
    import hashlib

    ref = REFERENCE["cases"][case]
    seed = int(case.removeprefix("seed"))
    ctx = PruneContext(seed=0, batches=None, loss_fn=None, device=torch.device("cpu"), num_classes=ref["dims"][-1],
                       input_shape=(ref["dims"][0],))

    def masks_hash(counting: str) -> str:
        model = _ref_model(seed, ref["dims"])
        pruner = build_config(PRUNERS.get("synflow"), {"iterations": ref["iterations"], "counting": counting}, "s")
        masks = pruner.initial_masks(model, ctx, 1.0 - ref["density"], ALLOCATIONS.get("global")())
        h = hashlib.sha256()
        for i, name in enumerate(masks):
            h.update(f"layers.{2 * i}.weight".encode())
            h.update(masks[name].to(torch.bool).numpy().tobytes())
        return h.hexdigest()

    assert masks_hash("reference") == ref["masks_sha256"]
    assert masks_hash("exact") != ref["masks_sha256"]


def test_reference_counting_is_refused_for_layer_allocations_it_does_not_have():
    from benchmark.spec import make_spec

    with pytest.raises(ConfigError, match="use allocation 'global' or 'uniform'"):
        make_spec("digits-mlp", "synflow", 0.9, allocation="erk", pruner_args={"counting": "reference"})
