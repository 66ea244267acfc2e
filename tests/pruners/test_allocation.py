"""Layer allocations against their formulas: global, uniform, ERK, ER, balanced, pyramidal, custom."""
from __future__ import annotations

import math

import pytest
import torch

from pruners import ALLOCATIONS, ConfigError
from pruners.allocation import apportion, pyramidal_ratio
from pruners.registry import build_config

SHAPES = {"conv1.weight": (16, 3, 3, 3), "conv2.weight": (32, 16, 3, 3), "fc1.weight": (64, 512),
          "fc2.weight": (10, 64)}


def scores(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=g) for n, s in SHAPES.items()}


def alloc(name: str, **args):
    return build_config(ALLOCATIONS.get(name), args, f"allocation {name!r}")


def numel(n: str) -> int:
    return math.prod(SHAPES[n])


N = sum(math.prod(s) for s in SHAPES.values())


@pytest.mark.parametrize("name", ["global", "erk", "er", "balanced", "pyramidal"])
@pytest.mark.parametrize("density", [0.5, 0.2, 0.05, 0.01, 0.0])
def test_exact_total(name, density):
    m = alloc(name).masks(scores(), density)
    assert m.kept() == int(round(density * N))


def test_global_keeps_top_scores_exactly():
    s = scores()
    m = alloc("global").masks(s, 0.1)
    flat_s = torch.cat([s[n].reshape(-1) for n in s])
    flat_m = torch.cat([m[n].reshape(-1) for n in s])
    assert int(flat_m.sum()) == int(round(0.1 * N))
    assert flat_s[flat_m].min() >= flat_s[~flat_m].max()


def test_global_ties_are_deterministic_and_exact():
    s = {n: torch.zeros(shape) for n, shape in SHAPES.items()}
    m1, m2 = alloc("global").masks(s, 0.3), alloc("global").masks(s, 0.3)
    assert m1.equal(m2) and m1.kept() == int(round(0.3 * N))


def test_uniform_formula():
    m = alloc("uniform").masks(scores(), 0.2)
    for n in SHAPES:
        assert m.counts()[n][0] == int(round(0.2 * numel(n)))


def erk_reference(density: float, kernel: bool = True) -> dict[str, float]:
    """Independent ERK: ε·raw with the RigL dense-layer loop, written from the formula."""
    raw = {}
    for n, s in SHAPES.items():
        dims = [s[1], s[0], *s[2:]] if kernel else [s[1], s[0]]
        raw[n] = sum(dims) / math.prod(dims)
    dense: set[str] = set()
    while True:
        eps = (density * N - sum(numel(n) for n in dense)) / sum(raw[n] * numel(n) for n in SHAPES if n not in dense)
        over = [n for n in SHAPES if n not in dense and eps * raw[n] > 1]
        if not over:
            return {n: 1.0 if n in dense else eps * raw[n] for n in SHAPES}
        top = max(raw[n] for n in SHAPES if n not in dense)
        dense |= {n for n in SHAPES if raw[n] == top and n not in dense}


@pytest.mark.parametrize("name,kernel", [("erk", True), ("er", False)])
@pytest.mark.parametrize("density", [0.3, 0.1, 0.02])
def test_erk_and_er_formula(name, kernel, density):
    ref = erk_reference(density, kernel)
    m = alloc(name).masks(scores(), density)
    for n in SHAPES:
        assert abs(m.counts()[n][0] - ref[n] * numel(n)) < 1.0, n   # largest-remainder rounding


def test_erk_kernel_term_and_dense_fallback():
    # conv1 (16, 3, 3, 3): raw = (3 + 16 + 3 + 3) / (3·16·9) = 25/432
    assert alloc("erk").raw((16, 3, 3, 3)) == pytest.approx(25 / 432)
    assert alloc("er").raw((16, 3, 3, 3)) == pytest.approx(19 / 48)
    assert alloc("erk").raw((10, 64)) == pytest.approx(74 / 640)
    # at density 0.3 fc2 (the largest raw value) would exceed 1: it is made dense and ε re-solved,
    # after which conv1 fits; at 0.4 conv1 is made dense in a second round
    d = alloc("erk").layer_densities(SHAPES, int(round(0.3 * N)))
    assert d["fc2.weight"] == 1.0 and 0.9 < d["conv1.weight"] < 1.0
    assert d["fc1.weight"] / d["conv2.weight"] == pytest.approx((576 / 32768) / (54 / 4608))
    assert sum(d[n] * numel(n) for n in SHAPES) == pytest.approx(int(round(0.3 * N)))
    d = alloc("erk").layer_densities(SHAPES, int(round(0.4 * N)))
    assert d["fc2.weight"] == 1.0 and d["conv1.weight"] == 1.0
    assert sum(d[n] * numel(n) for n in SHAPES) == pytest.approx(int(round(0.4 * N)))


def test_balanced_formula():
    budget = int(round(0.1 * N))
    d = alloc("balanced").layer_densities(SHAPES, budget)
    # conv1 (432) and fc2 (640) are smaller than X = budget / 4 → dense; the rest share equally
    assert d["conv1.weight"] == 1.0 and d["fc2.weight"] == 1.0
    x = (budget - numel("conv1.weight") - numel("fc2.weight")) / 2
    assert d["conv2.weight"] * numel("conv2.weight") == pytest.approx(x)
    assert d["fc1.weight"] * numel("fc1.weight") == pytest.approx(x)
    # the reference code's variant (no redistribution): X = d·N/L, clipped at 1
    d0 = alloc("balanced", redistribute=False).layer_densities(SHAPES, budget)
    for n in SHAPES:
        assert d0[n] == pytest.approx(min(1.0, budget / 4 / numel(n)))
    m = alloc("balanced").masks(scores(), 0.1)
    counts = [m.counts()[n][0] for n in ("conv2.weight", "fc1.weight")]
    assert max(counts) - min(counts) <= 1


def test_pyramidal_formula():
    budget = int(round(0.2 * N))
    d = alloc("pyramidal").layer_densities(SHAPES, budget)
    r = d["conv1.weight"]
    for i, n in enumerate(SHAPES):
        assert d[n] == pytest.approx(r ** (i + 1))
    assert sum(d[n] * numel(n) for n in SHAPES) == pytest.approx(budget, rel=1e-9)
    # the root is the one numpy finds for the reference code's polynomial
    import numpy as np

    coeffs = [numel(n) for n in SHAPES][::-1] + [-budget]
    roots = [z.real for z in np.roots(coeffs) if abs(z.imag) < 1e-12 and 0 < z.real < 1]
    assert r == pytest.approx(roots[0], rel=1e-9)
    assert pyramidal_ratio([10, 10], 0) == 0.0 and pyramidal_ratio([10, 10], 20) == 1.0


def test_dense_first_last_with_erk():
    a = alloc("erk", dense_first=True, dense_last=True)
    m = a.masks(scores(), 0.2)
    assert m.layer_density()["conv1.weight"] == 1.0 and m.layer_density()["fc2.weight"] == 1.0
    assert m.kept() == int(round(0.2 * N))


def test_custom_map():
    a = alloc("custom", densities={"conv1": 1.0, "fc1.weight": 0.1})
    m = a.masks(scores(), 0.2)
    c = m.counts()
    assert c["conv1.weight"][0] == numel("conv1.weight")
    assert c["fc1.weight"][0] == int(round(0.1 * numel("fc1.weight")))
    assert m.kept() == int(round(0.2 * N))            # unspecified layers absorb the rest
    d_rest = [m.layer_density()[n] for n in ("conv2.weight", "fc2.weight")]
    assert abs(d_rest[0] - d_rest[1]) < 2 / numel("fc2.weight")


def test_custom_full_map_must_match_target():
    full = {n: 0.5 for n in SHAPES}
    assert alloc("custom", densities=full).masks(scores(), 0.5).kept() == N // 2
    with pytest.raises(ConfigError, match="target"):
        alloc("custom", densities=full).masks(scores(), 0.1)


@pytest.mark.parametrize("densities,match", [({"conv9": 0.5}, "conv9"), ({"fc1": 1.5}, "fc1"),
                                             ({"fc1": -0.1}, "fc1"), ({"fc1": 0.0, "conv2": 0.0}, "would need")])
def test_custom_bad_maps(densities, match):
    with pytest.raises(ConfigError, match=match) as exc:
        alloc("custom", densities=densities).masks(scores(), 0.5)
    assert "\n" not in str(exc.value)


def test_custom_density_range_is_checked_at_validation():
    with pytest.raises(ConfigError, match="outside"):
        build_config(ALLOCATIONS.get("custom"), {"densities": {"fc1": 2}}, "allocation 'custom'")


def test_unknown_allocation_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown allocation") as exc:
        ALLOCATIONS.get("erkk")
    assert "erk" in str(exc.value) and "\n" not in str(exc.value)


def test_no_prunable_layers_and_bad_density():
    with pytest.raises(ConfigError, match="no prunable layers"):
        alloc("erk").masks({}, 0.5)
    with pytest.raises(ConfigError):
        alloc("erk").masks(scores(), 1.5)


def test_apportion_exact_and_capped():
    c = apportion({"a": 2.5, "b": 2.5, "c": 9.9}, {"a": 3, "b": 3, "c": 9}, 14)
    assert sum(c.values()) == 14 and c["c"] == 9 and c["a"] == 3 and c["b"] == 2


# -------------------------------------------------------------------------------------------------
# Selection instead of sorting: bit-identical to the sort-based reference on tie-heavy scores

def reference_stable_order(s: torch.Tensor) -> torch.Tensor:
    """The original ranking: a full descending stable sort (float16 / bfloat16 / integer → float32)."""
    flat = s.detach().reshape(-1)
    if not flat.is_floating_point() or flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    return torch.sort(flat, descending=True, stable=True).indices


def reference_masks_from_counts(s: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, torch.Tensor]:
    """The original per-layer masks: sort each layer, keep the first ``count`` indices."""
    out = {}
    for name, v in s.items():
        k = int(counts[name])
        flat = torch.zeros(v.numel(), dtype=torch.bool)
        if k > 0:
            flat[reference_stable_order(v)[:k]] = True
        out[name] = flat.view_as(v)
    return out


def reference_global_counts(a, s: dict[str, torch.Tensor], density: float) -> dict[str, int]:
    """The original global counts: one stable sort of all free scores, kept entries counted per layer."""
    import functools

    fixed, budget, free = a._budget(s, density)
    counts = dict(fixed)
    if not free:
        return counts
    dtype = torch.promote_types(torch.float32, functools.reduce(torch.promote_types, (s[n].dtype for n in free)))
    flat = torch.cat([s[n].reshape(-1).to(dtype) for n in free])
    owner = torch.cat([torch.full((s[n].numel(),), i, dtype=torch.long) for i, n in enumerate(free)])
    per = torch.bincount(owner[reference_stable_order(flat)[:budget]], minlength=len(free))
    counts.update({n: int(per[i]) for i, n in enumerate(free)})
    return counts


def tie_scores(seed: int, kind: str) -> dict[str, torch.Tensor]:
    """Scores with many ties: few distinct values, zeros of both signs, −1 (SynFlow's pruned), ±inf."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (n, shape) in enumerate(SHAPES.items()):
        v = torch.randint(0, 4, shape, generator=g).double() / 4          # 0, .25, .5, .75
        if kind != "few-values":
            u = torch.rand(shape, generator=g, dtype=torch.float64)
            v = torch.where(torch.rand(shape, generator=g) < 0.5, u, v)
        v = torch.where(torch.rand(shape, generator=g) < 0.2, torch.full_like(v, -1.0), v)
        v = torch.where(torch.rand(shape, generator=g) < 0.05, torch.full_like(v, -0.0), v)
        if kind == "inf":
            v.view(-1)[:3] = float("inf")
            v.view(-1)[-2:] = float("-inf")
        if kind == "nan":
            v.view(-1)[5:7] = float("nan")
        if kind == "mixed":   # float64, float32, float16 and integer layers side by side
            v = [v, v.float(), v.half(), (v * 4).long()][i % 4]
        elif kind == "int32":
            v = [v.float(), (v * 4).int()][i % 2]
        elif kind == "float64":
            v = v + torch.rand(shape, generator=g, dtype=torch.float64) * 1e-12  # differs below float32
        elif kind != "float64-only":
            v = v.float()
        out[n] = v
    return out


KINDS = ["few-values", "random", "inf", "nan", "mixed", "int32", "float64", "float64-only"]
ALLOC_ARGS = [("global", {}), ("global", {"dense_first": True}), ("global", {"dense_last": True, "dense_first": True}),
              ("uniform", {}), ("erk", {}), ("er", {}), ("balanced", {}), ("balanced", {"redistribute": False}),
              ("pyramidal", {}), ("custom", {"densities": {"conv2": 0.3}})]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name,args", ALLOC_ARGS)
def test_masks_bit_identical_to_sort_reference(kind, name, args):
    a = alloc(name, **args)
    for seed in range(2):
        s = tie_scores(seed, kind)
        for density in (0.0, 0.003, 0.1, 0.35, 0.5, 0.8, 0.97, 1.0):
            try:
                counts = reference_global_counts(a, s, density) if name == "global" else a.counts(s, density)
            except ConfigError:
                continue
            if name == "global":
                assert a.counts(s, density) == counts
            ref = reference_masks_from_counts(s, counts)
            m = a.masks(s, density)
            assert list(m) == list(ref)
            assert len({m[n].untyped_storage().data_ptr() for n in m}) == len(m)   # no shared storage
            for n in ref:
                assert m[n].dtype == torch.bool and m[n].shape == ref[n].shape
                assert torch.equal(m[n], ref[n]), (kind, name, density, n)


def test_top_k_mask_equals_stable_sort_prefix():
    from pruners.allocation import top_k_mask

    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool):
        v = torch.randint(-3, 4, (7, 11), generator=g)
        v = v.bool() if dtype == torch.bool else v.to(dtype)
        if dtype.is_floating_point:
            v = v / 2
        for k in (-1, 0, 1, 2, 5, 38, 76, 77, 100):
            ref = torch.zeros(v.numel(), dtype=torch.bool)
            if k > 0:
                ref[reference_stable_order(v)[:k]] = True
            assert torch.equal(top_k_mask(v, k), ref.view_as(v)), (dtype, k)


def test_sampled_threshold_path_bit_identical(monkeypatch):
    """Large inputs find the threshold among candidates bracketed by a strided sample; shrink the
    sizes so the test scores take that path, and include data on which the bracket misses
    (periodic with the stride), which must fall back to a full selection: both exact."""
    import pruners.allocation as A

    monkeypatch.setattr(A, "_SAMPLE_FROM", 500)
    monkeypatch.setattr(A, "_SAMPLE_SIZE", 64)
    sizes = []
    real = torch.kthvalue

    def spy(x, k, *a, **kw):
        sizes.append(x.numel())
        return real(x, k, *a, **kw)

    monkeypatch.setattr(torch, "kthvalue", spy)
    for kind in ("few-values", "random", "inf", "float64"):
        for name, args in ALLOC_ARGS:
            a = alloc(name, **args)
            s = tie_scores(0, kind)
            for density in (0.003, 0.1, 0.5, 0.97):
                try:
                    counts = reference_global_counts(a, s, density) if name == "global" else a.counts(s, density)
                except ConfigError:
                    continue
                ref = reference_masks_from_counts(s, counts)
                m = a.masks(s, density)
                assert all(torch.equal(m[n], ref[n]) for n in ref), (kind, name, density)
    assert any(n < N // 4 for n in sizes)                      # candidates only
    periodic = {"a": (torch.arange(4096) % 64).float().view(64, 64)}
    sizes.clear()
    for k in (1, 100, 2000, 4000, 4095):
        ref = torch.zeros(4096, dtype=torch.bool)
        ref[reference_stable_order(periodic["a"])[:k]] = True
        assert torch.equal(A.top_k_mask(periodic["a"], k).reshape(-1), ref)
    assert 4096 in sizes                                       # the bracket missed: full selection
    monkeypatch.setattr(A, "_SAMPLE_SIZE", 1024)
    g = torch.Generator().manual_seed(5)
    n = 40_000
    blocks = {"zeros": torch.zeros(n), "top": torch.ones(n), "minus-one": torch.full((n,), -1.0)}
    blocks["zeros"][:2000] = torch.rand(2000, generator=g) + 0.5       # one value spans the bracket
    blocks["top"][20_000:] = torch.rand(20_000, generator=g)           # a tie block at the top
    blocks["minus-one"][::3] = torch.rand(13_334, generator=g)         # SynFlow-like: pruned = -1
    for v in blocks.values():
        for k in (1, 1999, 2000, 2001, 13_000, 13_334, 13_335, 19_999, 20_000, 20_001, 30_000, 39_999):
            ref = torch.zeros(n, dtype=torch.bool)
            ref[reference_stable_order(v)[:k]] = True
            assert torch.equal(A.top_k_mask(v, k), ref)
    monkeypatch.setattr(A, "_SAMPLE_SIZE", 8)                   # a sample too small to bracket anything
    v = blocks["minus-one"]
    ref = torch.zeros(n, dtype=torch.bool)
    ref[reference_stable_order(v)[:5000]] = True
    assert torch.equal(A.top_k_mask(v, 5000), ref)
