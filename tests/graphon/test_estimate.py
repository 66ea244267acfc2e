"""Tests of graphon.estimate: consistency on Erdős–Rényi and planted-block masks, conventions, errors."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.stats import norm

from graphon.estimate import cell_bounds, conv_connectivity, estimate
from pruners.registry import ConfigError


def _er(n_out: int, n_in: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n_out, n_in, generator=g) < p


def _bin_mean_var(K: int) -> float:
    """Variance of the means of a standard normal over K equal-probability bins."""
    z = norm.ppf(np.linspace(0, 1, K + 1))
    m = K * (norm.pdf(z[:-1]) - norm.pdf(z[1:]))
    return float(np.mean(m ** 2))


def test_er_cells_converge_to_p() -> None:
    p, K = 0.3, 16
    errs = [np.abs(estimate(_er(n, n, p, 1), K).matrix - p).max() for n in (256, 1024)]
    assert errs[1] < errs[0] / 2
    assert errs[1] < 0.08          # the extreme cells carry the sorted-degree spread ~ 2·sqrt(p(1-p)/n)·z
    e = estimate(_er(1024, 1024, p, 1), K)
    assert e.matrix.mean() == pytest.approx(p, abs=5e-3)
    assert e.density == pytest.approx(float(_er(1024, 1024, p, 1).float().mean()))


@pytest.mark.parametrize("n", [512, 1024, 2048])
def test_er_cell_std_matches_formula(n: int) -> None:
    """Unsorted cells: std = sqrt(p(1-p))/h with h = n/K (1/sqrt(cell size h²)).  Degree-sorted cells
    add the spread of the sorted degrees: std² = p(1-p)(K²/n² + 2 c_K / n), c_K the bin-mean variance."""
    p, K = 0.3, 64
    sorted_std, plain_std = [], []
    for seed in range(3):
        m = _er(n, n, p, seed)
        sorted_std.append(estimate(m, K).heterogeneity)
        plain_std.append(estimate(m, K, keep_input_order=True, keep_output_order=True).heterogeneity)
    h = n / K
    assert np.mean(plain_std) / (np.sqrt(p * (1 - p)) / h) == pytest.approx(1.0, abs=0.05)
    pred = np.sqrt(p * (1 - p) * (K ** 2 / n ** 2 + 2 * _bin_mean_var(K) / n))
    assert np.mean(sorted_std) / pred == pytest.approx(1.0, abs=0.05)


def test_er_std_ratio_when_width_doubles() -> None:
    p, K = 0.2, 32
    s = [np.mean([estimate(_er(n, n, p, t), K, keep_input_order=True, keep_output_order=True).heterogeneity
                  for t in range(3)]) for n in (512, 1024)]
    assert s[0] / s[1] == pytest.approx(2.0, rel=0.06)   # 1/sqrt(cell size), cell size ∝ n²


def test_planted_two_blocks_recovered_after_permutation() -> None:
    n, K = 1024, 16
    g = torch.Generator().manual_seed(3)
    probs = torch.full((n, n), 0.1)
    probs[: n // 4, : n // 2] = 0.8      # a quarter of the outputs wired densely to half the inputs
    m = torch.rand(n, n, generator=g) < probs
    rp = torch.randperm(n, generator=g)
    cp = torch.randperm(n, generator=g)
    est = estimate(m[rp][:, cp], K)
    truth = np.full((K, K), 0.1)
    truth[: K // 4, : K // 2] = 0.8
    assert np.abs(est.matrix - truth).max() < 0.06
    # the sorted positions point back at the planted neurons
    assert set(rp[est.row_perm[: n // 4]].tolist()) == set(range(n // 4))
    assert set(cp[est.col_perm[: n // 2]].tolist()) == set(range(n // 2))


def test_sort_direction_and_stable_ties() -> None:
    m = torch.tensor([[0, 0, 1], [1, 1, 1], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    e = estimate(m, (4, 3))
    assert e.row_perm.tolist() == [1, 2, 0, 3]       # in-degree 3, 2, 1, 0 (descending)
    assert e.col_perm.tolist() == [2, 0, 1]          # out-degree 3, 2, 1
    ties = estimate(torch.eye(4, dtype=torch.bool), 4)
    assert ties.row_perm.tolist() == [0, 1, 2, 3]    # equal degrees keep index order
    np.testing.assert_array_equal(ties.matrix, np.eye(4))
    np.testing.assert_array_equal(e.in_degree, [1, 3, 2, 0])
    np.testing.assert_array_equal(e.out_degree, [2, 1, 3])


def test_sides_not_divisible_by_K() -> None:
    assert cell_bounds(10, 3).tolist() == [0, 3, 6, 10]
    m = _er(103, 70, 0.4, 0)
    e = estimate(m, 8)
    assert e.row_sizes.sum() == 103 and e.col_sizes.sum() == 70
    assert set(e.row_sizes.tolist()) <= {12, 13} and set(e.col_sizes.tolist()) <= {8, 9}
    # cell-size-weighted mean of the cells is the exact density
    w = np.outer(e.row_sizes, e.col_sizes)
    assert (e.matrix * w).sum() / w.sum() == pytest.approx(float(m.double().mean()), abs=1e-12)
    # brute-force block average with the documented convention
    mp = m.numpy()[e.row_perm][:, e.col_perm].astype(float)
    rb, cb = cell_bounds(103, 8), cell_bounds(70, 8)
    for a in range(8):
        for b in range(8):
            assert e.matrix[a, b] == pytest.approx(mp[rb[a]:rb[a + 1], cb[b]:cb[b + 1]].mean(), abs=1e-12)


def test_keep_input_order_shows_feature_selection() -> None:
    m = torch.zeros(64, 32, dtype=torch.bool)
    m[:, 8:16] = True                                  # only features 8..15 are used
    e = estimate(m, (4, 4), keep_input_order=True)
    np.testing.assert_array_equal(e.col_perm, np.arange(32))
    np.testing.assert_allclose(e.matrix, np.tile([0.0, 1.0, 0.0, 0.0], (4, 1)))
    assert e.dead_inputs == pytest.approx(24 / 32)
    assert e.dead_share == pytest.approx(24 / 96)


def test_explicit_orders_and_numpy_input() -> None:
    m = _er(40, 30, 0.5, 2).numpy().astype(np.float32)
    rp = np.random.default_rng(0).permutation(40)
    e = estimate(m, (5, 3), row_order=rp, keep_input_order=True)
    np.testing.assert_array_equal(e.row_perm, rp)
    assert e.matrix[0, 0] == pytest.approx(m[rp[:8]][:, :10].mean())


def test_tv_and_usvt_denoise_a_block_graphon() -> None:
    n, K = 600, 20
    g = torch.Generator().manual_seed(5)
    probs = torch.full((n, n), 0.2)
    probs[: n // 2, : n // 2] = 0.7
    m = torch.rand(n, n, generator=g) < probs
    truth = np.full((K, K), 0.2)
    truth[: K // 2, : K // 2] = 0.7
    err = {meth: np.sqrt(np.mean((estimate(m, K, method=meth).matrix - truth) ** 2))
           for meth in ("sas", "sas_tv", "usvt")}
    assert err["sas_tv"] < err["sas"]
    assert err["usvt"] < err["sas"]
    assert err["usvt"] < 0.03


def test_conv_connectivity() -> None:
    m = torch.zeros(3, 2, 3, 3, dtype=torch.bool)
    m[0, 1, 2, 2] = True
    m[2, 0, 0, 1] = True
    np.testing.assert_array_equal(conv_connectivity(m).numpy(), [[0, 1], [0, 0], [1, 0]])


@pytest.mark.parametrize("bad, K, msg", [
    (torch.ones(4, 4, 3, dtype=torch.bool), 2, "not 2-d"),
    (torch.ones(8, dtype=torch.bool), 2, "not 2-d"),
    (torch.full((8, 8), 0.5), 2, "not binary"),
    (torch.ones(8, 4, dtype=torch.bool), 5, "larger than the input"),
    (torch.ones(4, 8, dtype=torch.bool), 5, "larger than the output"),
    (torch.ones(4, 8, dtype=torch.bool), 0, "K=0"),
])
def test_bad_masks_raise_config_error(bad: torch.Tensor, K: int, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg) as info:
        estimate(bad, K)
    assert "\n" not in str(info.value)


def test_bad_method_and_order() -> None:
    m = torch.ones(8, 8, dtype=torch.bool)
    with pytest.raises(ConfigError, match="unknown graphon estimation method"):
        estimate(m, 2, method="sbm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a permutation"):
        estimate(m, 2, row_order=np.zeros(8))


def test_large_mask_is_fast_smoke() -> None:
    """Not a timing assertion (the machine is shared): a 2048² mask finishes well within a second."""
    m = _er(2048, 2048, 0.1, 0)
    t0 = time.perf_counter()
    estimate(m, 64)
    assert time.perf_counter() - t0 < 5.0
