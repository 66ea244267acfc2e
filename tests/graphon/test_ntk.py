"""Tests of graphon.ntk: exact identities, the literal PAPERS.md §8 recursion, finite networks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphon.estimate import cell_of_position
from graphon.ntk import (MaskedMLP, dense_ntk, empirical_ntk, graphon_ntk, graphons_from_masks, mlp_coverage,
                         relu_expectations, sample_masked_mlp, sample_masks)
from graphon.spectrum import spectrum_metrics
from pruners.registry import ConfigError


def _batch(n: int = 8, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _two_block(K: int = 4) -> np.ndarray:
    w = np.full((K, K), 0.2)
    w[: K // 2, : K // 2] = 0.9
    w[K // 2:, K // 2:] = 0.6
    return w


def _backward_literal(graphons: list[np.ndarray], x: torch.Tensor) -> np.ndarray:
    """PAPERS.md §8 written out: forward Σ̃/Σ/Σ̇ per position, backward G, Θ = Σ_l ∫ G^l Σ̃^l du."""
    n, d = x.shape
    k_in = graphons[0].shape[1]
    cell = cell_of_position(d, k_in)
    xs = x.numpy()
    sig_t = [np.stack([sum(graphons[0][u, cell[j]] * np.outer(xs[:, j], xs[:, j]) for j in range(d)) / d
                       for u in range(graphons[0].shape[0])])]
    sig, sdot = [], []
    for layer in range(len(graphons)):
        s, sd = relu_expectations(torch.from_numpy(sig_t[-1]))
        sig.append(s.numpy())
        sdot.append(sd.numpy())
        if layer + 1 < len(graphons):
            w = graphons[layer + 1]
            sig_t.append(np.einsum("ab,bij->aij", w, sig[-1]) / w.shape[1])
    k = graphons[-1].shape[0]
    sig_t.append(sig[-1].mean(0, keepdims=True))          # Σ̃^{L+1} = ∫ Σ^L (dense readout)
    g = [np.ones((1, n, n))]                               # G^{L+1} = 1
    for layer in range(len(graphons) - 1, -1, -1):
        w_next = np.ones((1, k)) if layer == len(graphons) - 1 else graphons[layer + 1]
        back = np.einsum("ab,aij->bij", w_next, g[0]) / w_next.shape[0]   # ∫ du' over the next layer
        g.insert(0, sdot[layer] * back)
    return sum((gl * st).mean(0) for gl, st in zip(g, sig_t))


def test_relu_expectations_match_monte_carlo() -> None:
    cov = torch.tensor([[2.0, -0.7], [-0.7, 1.0]], dtype=torch.float64)
    s, sd = relu_expectations(cov)
    z = torch.randn(400_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = z @ torch.linalg.cholesky(cov).mT
    assert float(s[0, 1]) == pytest.approx(float((h[:, 0].relu() * h[:, 1].relu()).mean()), abs=3e-3)
    assert float(sd[0, 1]) == pytest.approx(float(((h[:, 0] > 0) & (h[:, 1] > 0)).double().mean()), abs=3e-3)
    assert float(s[0, 0]) == pytest.approx(1.0)            # E[relu(h)²] = var/2
    assert float(sd[1, 1]) == pytest.approx(0.5)


def test_constant_graphon_scales_dense_ntk_by_c_to_the_L() -> None:
    """c on all L masked layers (input layer included), dense readout: Θ = c^L Θ_dense, float64, 1e-10."""
    x = _batch(10, 12)
    for L, c in ((1, 0.5), (3, 0.3), (4, 0.8)):
        theta = graphon_ntk([np.full((8, 4), c)] + [np.full((8, 8), c)] * (L - 1), x)
        dense = dense_ntk(x, L)
        np.testing.assert_allclose(theta, c ** L * dense, rtol=1e-10, atol=1e-12)


def test_forward_form_equals_literal_backward_recursion() -> None:
    rng = np.random.default_rng(0)
    x = _batch(6, 10)
    graphons = [rng.random((5, 3)), rng.random((5, 5)), rng.random((5, 5))]
    np.testing.assert_allclose(graphon_ntk(graphons, x), _backward_literal(graphons, x), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", ["dense", "two_block"])
def test_graphon_ntk_matches_finite_masked_networks(case: str) -> None:
    """Width 1000, 2 hidden layers, mean empirical NTK over 6 seeds within 6 % (Frobenius, relative)."""
    d = 16
    x = _batch(8, d)
    if case == "dense":
        graphons = [np.ones((1, 1)), np.ones((1, 1))]
    else:
        g_in = np.full((4, 4), 0.5)
        g_in[:2, :2] = 1.0
        graphons = [g_in, _two_block()]
    theta = graphon_ntk(graphons, x)
    emp = np.mean([empirical_ntk(sample_masked_mlp(graphons, d, 1000, seed=s), x) for s in range(6)], axis=0)
    assert np.linalg.norm(emp - theta) / np.linalg.norm(theta) < 0.06


def test_hidden_graphons_only_rescale_with_a_position_independent_first_layer() -> None:
    """PAPERS.md §8 caveat: Θ = P · Θ_dense with P the path density; scale-free metrics unchanged."""
    rng = np.random.default_rng(1)
    x = _batch(40, 20, seed=2)
    K, L, c1 = 6, 4, 0.7
    hidden = [rng.random((K, K)) for _ in range(L - 1)]
    theta = graphon_ntk([np.full((K, 5), c1)] + hidden, x)
    s = np.full(K, c1)                                    # forward path density into each position
    for w in hidden:
        s = w @ s / K
    path_density = s.mean()                               # dense readout: P = ∫ s_L(u) du
    dense = dense_ntk(x, L)
    np.testing.assert_allclose(theta, path_density * dense, rtol=1e-10, atol=1e-13)
    a, b = spectrum_metrics(theta), spectrum_metrics(dense)
    for key in ("decay_rate", "effective_rank", "spectral_gap", "top5_energy"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-9)
    # ... whereas an input-layer graphon that depends on the position changes the shape of the spectrum
    g_in = np.full((K, 5), 0.2)
    g_in[: K // 2, :2] = 1.0
    c = spectrum_metrics(graphon_ntk([g_in] + hidden, x))
    assert abs(c.top5_energy - b.top5_energy) > 1e-3


def test_graphons_from_masks_reproduce_the_ntk() -> None:
    d = 16
    x = _batch(8, d)
    g_in = np.full((4, 4), 0.3)
    g_in[:2] = 0.9
    graphons = [g_in, _two_block()]
    masks = sample_masks(graphons, d, 800, generator=torch.Generator().manual_seed(0))
    named = [("l1", masks[0]), ("l2", masks[1]), ("out", torch.ones(3, 800, dtype=torch.bool))]
    est, w_out = graphons_from_masks(named, K=4, d=d)
    assert est[0].shape == (4, 4) and est[1].shape == (4, 4)
    np.testing.assert_allclose(w_out, 1.0)
    theta_est = graphon_ntk(est, x, output_density=w_out)
    theta = graphon_ntk(graphons, x)
    assert np.linalg.norm(theta_est - theta) / np.linalg.norm(theta) < 0.03


def test_output_density_scales_readout() -> None:
    x = _batch(5, 6)
    g = [np.full((4, 3), 0.5)]
    half = graphon_ntk(g, x, output_density=np.full(4, 0.5))
    np.testing.assert_allclose(half, 0.5 * graphon_ntk(g, x), rtol=1e-12)


def test_masked_mlp_has_zero_gradient_on_pruned_weights() -> None:
    masks = [torch.rand(20, 5, generator=torch.Generator().manual_seed(0)) < 0.5]
    model = MaskedMLP(masks, generator=torch.Generator().manual_seed(1))
    x = _batch(3, 5)
    model(x).sum().backward()
    assert bool((model.weights[0].grad[~masks[0]] == 0).all())
    k = empirical_ntk(model, x)
    assert k.shape == (3, 3) and np.allclose(k, k.T)
    # masks= restricts a plain model's tangent space the same way
    plain = torch.nn.Sequential(torch.nn.Linear(5, 20, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(20, 1, bias=False)).double()
    with torch.no_grad():
        plain[0].weight.copy_(model.weights[0] * masks[0] / np.sqrt(5))
        plain[2].weight.copy_(model.weights[1] / np.sqrt(20))
    k_plain = empirical_ntk(plain, x, masks={"0.weight": masks[0]})
    assert k_plain.shape == (3, 3)


@pytest.mark.parametrize("graphons, X, msg", [
    ([np.ones((4, 4)), np.ones((3, 3))], torch.ones(2, 8), "K_in=3 but layer 1 has K_out=4"),
    ([np.full((2, 2), 1.5)], torch.ones(2, 8), "outside \\[0, 1\\]"),
    ([np.ones((2, 16))], torch.ones(2, 8), "K_in=16 cells but the batch has only d=8"),
    ([np.ones((2, 2))], torch.ones(2, 2, 2), "2-d"),
    ([], torch.ones(2, 8), "at least one masked layer"),
])
def test_ntk_bad_input(graphons: list, X: torch.Tensor, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg) as info:
        graphon_ntk(graphons, X)
    assert "\n" not in str(info.value)


def test_coverage_names_the_uncovered_layer() -> None:
    conv = [("conv.weight", torch.ones(4, 3, 3, 3, dtype=torch.bool)), ("fc.weight", torch.ones(2, 4))]
    assert "conv.weight" in mlp_coverage(conv)
    skip = [("a", torch.ones(8, 4)), ("b", torch.ones(8, 6)), ("c", torch.ones(1, 8))]
    assert "skip" in mlp_coverage(skip)
    with pytest.raises(ConfigError, match="does not cover.*conv.weight"):
        graphons_from_masks(conv, 2)
    assert mlp_coverage([("a", torch.ones(8, 4)), ("b", torch.ones(1, 8))], d=4) is None
