"""Tests of graphon.spectrum on matrices with known eigenvalues."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from graphon.spectrum import decay_rate, eigenvalues, spectrum_metrics
from pruners.registry import ConfigError


def _with_eigs(lam: np.ndarray, seed: int = 0) -> np.ndarray:
    q = ortho_group.rvs(lam.shape[0], random_state=seed)
    return (q * lam) @ q.T


def test_power_law_metrics_equal_definitions() -> None:
    n = 60
    k = np.arange(1, n + 1)
    lam = k ** -1.5
    theta = _with_eigs(lam[::-1].copy())                       # order of construction does not matter
    m = spectrum_metrics(theta)
    np.testing.assert_allclose(eigenvalues(theta), lam, atol=1e-12)
    assert m.decay_rate == pytest.approx(1.5, abs=1e-8)
    assert (m.fit_k_min, m.fit_k_max) == (2, 30)
    assert m.effective_rank == pytest.approx(lam.sum() / lam[0])
    assert m.spectral_gap == pytest.approx(lam[0] / lam[1])
    assert m.spectral_gap == pytest.approx(2 ** 1.5)
    assert m.top5_energy == pytest.approx(lam[:5].sum() / lam.sum())
    assert m.lambda_max == pytest.approx(1.0)


def test_scale_free_metrics_ignore_scale() -> None:
    theta = _with_eigs(np.linspace(3.0, 0.1, 20), seed=1)
    a, b = spectrum_metrics(theta), spectrum_metrics(7.0 * theta)
    for key in ("decay_rate", "effective_rank", "spectral_gap", "top5_energy"):
        assert getattr(a, key) == pytest.approx(getattr(b, key))
    assert b.lambda_max == pytest.approx(7.0 * a.lambda_max)


def test_decay_rate_range_and_floor() -> None:
    lam = np.r_[100.0, np.arange(2, 41) ** -2.0]               # outlier λ1 is excluded by k_min = 2
    assert decay_rate(lam)[0] == pytest.approx(2.0)
    assert decay_rate(lam, k_min=2, k_max=10) == (pytest.approx(2.0), 2, 10)
    assert np.isnan(decay_rate(np.array([1.0, 0.0, 0.0]))[0])


def test_as_dict_flat_keys() -> None:
    d = spectrum_metrics(np.diag([4.0, 2.0, 1.0, 0.5])).as_dict()
    assert d["ntk_lambda_max"] == 4.0 and d["ntk_spectral_gap"] == 2.0
    assert d["ntk_top5_energy"] == pytest.approx(1.0)


def test_bad_kernel_matrix() -> None:
    with pytest.raises(ConfigError, match="square"):
        spectrum_metrics(np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="non-finite"):
        spectrum_metrics(np.array([[np.nan]]))
