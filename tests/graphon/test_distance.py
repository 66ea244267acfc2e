"""Tests of graphon.distance: Frobenius by hand, cut norm against brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from graphon.distance import cut_distance, cut_norm, distance, distance_to_constant, frobenius
from graphon.distance import _cut_local
from pruners.registry import ConfigError


def _cut_brute(d: np.ndarray) -> float:
    """Independent definition: max over *all* row and column subsets of |Σ_{S×T} d| / area."""
    k_out, k_in = d.shape
    best = 0.0
    for s in itertools.product([0, 1], repeat=k_out):
        for t in itertools.product([0, 1], repeat=k_in):
            best = max(best, abs(float(np.array(s) @ d @ np.array(t))))
    return best / (k_out * k_in)


def test_frobenius_by_hand() -> None:
    a = np.array([[0.0, 1.0], [0.5, 0.5]])
    b = np.array([[1.0, 1.0], [0.5, 0.0]])
    # differences -1, 0, 0, 0.5 → mean square 1.25/4
    assert frobenius(a, b) == pytest.approx(np.sqrt(1.25 / 4))
    assert distance(a, b) == frobenius(a, b)
    assert frobenius(a, a) == 0.0


def test_cut_norm_equals_brute_force_on_tiny_matrices() -> None:
    rng = np.random.default_rng(0)
    for _ in range(25):
        d = rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 6))))
        assert cut_norm(d) == pytest.approx(_cut_brute(d), abs=1e-12)


def test_cut_local_search_is_a_tight_lower_bound() -> None:
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(60):
        d = rng.normal(size=(int(rng.integers(2, 9)), int(rng.integers(2, 9))))
        exact = cut_norm(d)                                   # exhaustive at this size
        approx = _cut_local(d, 32, 0) / d.size
        assert approx <= exact + 1e-12
        ratios.append(approx / exact)
    assert min(ratios) > 0.9
    assert np.mean(np.isclose(ratios, 1.0)) > 0.95


def test_cut_norm_large_K_uses_local_search() -> None:
    d = np.zeros((32, 32))
    d[:8, :16] = 0.5                                           # one positive block: the cut norm is its mass
    assert cut_norm(d) == pytest.approx(0.5 * 8 * 16 / 32 ** 2)
    assert cut_norm(-d) == pytest.approx(0.5 * 8 * 16 / 32 ** 2)


def test_cut_distance_and_known_values() -> None:
    a = np.full((4, 4), 0.3)
    b = a.copy()
    b[:2, :2] = 0.7                                            # difference 0.4 on a quarter of the square
    assert cut_distance(a, b) == pytest.approx(0.4 / 4)
    assert distance(a, b, "cut") == pytest.approx(0.1)
    assert frobenius(a, b) == pytest.approx(np.sqrt(0.16 / 4))


def test_distance_to_constant() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert distance_to_constant(a) == pytest.approx(0.5)       # = cell std for equal cells
    assert distance_to_constant(a) == pytest.approx(a.std())
    assert distance_to_constant(np.full((3, 3), 0.2)) == 0.0
    # weighted density: row cells of sizes 3 and 1 → density (3·1 + 1·0)/4 = 0.75 for this column
    w = distance_to_constant(np.array([[1.0], [0.0]]), row_sizes=np.array([3, 1]), col_sizes=np.array([1]))
    assert w == pytest.approx(np.sqrt(((1 - 0.75) ** 2 + 0.75 ** 2) / 2))
    assert distance_to_constant(a, "cut") == pytest.approx(0.5 / 4)   # one cell of ±0.5


def test_distance_errors() -> None:
    with pytest.raises(ConfigError, match="cannot be compared"):
        frobenius(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ConfigError, match="unknown graphon distance"):
        distance(np.zeros((2, 2)), np.zeros((2, 2)), "l1")  # type: ignore[arg-type]
