"""Spectrum metrics of an NTK Gram matrix (Graphon Limit Hypothesis, arXiv 2510.17515, §6).

For the eigenvalues ``λ_1 ≥ λ_2 ≥ … ≥ λ_n`` of a symmetric PSD kernel matrix Θ:

* ``decay_rate`` α: least-squares slope of ``log λ_k = c − α log k`` over ``k ∈ [k_min, k_max]``
  (defaults ``k_min = 2``, ``k_max = ⌊n/2⌋``; only eigenvalues ``> rel_floor · λ_1`` enter).  λ_1 is left
  out by default because an NTK on unnormalised data has one dominant "mean" eigenvalue that is not part
  of the power-law bulk; the upper half of the spectrum is left out because finite-sample and round-off
  effects dominate there.  Both ends are arguments.
* ``effective_rank`` = trace(Θ) / λ_1 = Σ_k λ_k / λ_1.
* ``spectral_gap`` = λ_1 / λ_2 (``inf`` when λ_2 ≤ 0).
* ``top5_energy`` = (λ_1 + … + λ_5) / Σ_k λ_k.
* ``lambda_max`` = λ_1.

All but ``lambda_max`` are scale-free: they do not change when Θ is multiplied by a positive constant.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pruners.registry import ConfigError


@dataclass(frozen=True)
class SpectrumMetrics:
    """Spectrum metrics of one kernel matrix (module docstring for the definitions)."""

    decay_rate: float
    effective_rank: float
    spectral_gap: float
    top5_energy: float
    lambda_max: float
    fit_k_min: int
    fit_k_max: int

    def as_dict(self, prefix: str = "ntk_") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def eigenvalues(theta: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric matrix ``theta``, descending (``numpy.linalg.eigvalsh``)."""
    t = np.asarray(theta, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] == 0:
        raise ConfigError(f"a kernel matrix must be square and non-empty, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ConfigError("the kernel matrix has non-finite entries; check the batch and the graphons")
    return np.linalg.eigvalsh(0.5 * (t + t.T))[::-1].copy()


def decay_rate(eigs: np.ndarray, k_min: int = 2, k_max: int | None = None,
               rel_floor: float = 1e-12) -> tuple[float, int, int]:
    """Power-law decay rate α of descending eigenvalues: slope of ``−log λ_k`` against ``log k``.

    Returns ``(α, k_lo, k_hi)`` with the k range actually used (1-based, inclusive); ``nan`` when fewer
    than two eigenvalues are usable.
    """
    lam = np.asarray(eigs, dtype=np.float64)
    n = lam.shape[0]
    k_hi = max(k_min, n // 2) if k_max is None else min(int(k_max), n)
    ks = np.arange(1, n + 1)
    sel = (ks >= k_min) & (ks <= k_hi) & (lam > rel_floor * max(lam[0], 0.0)) & (lam > 0)
    if sel.sum() < 2:
        return float("nan"), int(k_min), int(k_hi)
    slope, _ = np.polyfit(np.log(ks[sel]), np.log(lam[sel]), 1)
    return float(-slope), int(ks[sel].min()), int(ks[sel].max())


def spectrum_metrics(theta: np.ndarray, *, k_min: int = 2, k_max: int | None = None,
                     eigs: np.ndarray | None = None) -> SpectrumMetrics:
    """All spectrum metrics of ``theta`` (or of the given descending ``eigs``)."""
    lam = eigenvalues(theta) if eigs is None else np.sort(np.asarray(eigs, dtype=np.float64))[::-1]
    total = float(lam.sum())
    l1 = float(lam[0])
    l2 = float(lam[1]) if lam.shape[0] > 1 else 0.0
    alpha, k_lo, k_hi = decay_rate(lam, k_min, k_max)
    return SpectrumMetrics(
        decay_rate=alpha,
        effective_rank=total / l1 if l1 > 0 else float("nan"),
        spectral_gap=l1 / l2 if l2 > 0 else float("inf"),
        top5_energy=float(lam[:5].sum()) / total if total > 0 else float("nan"),
        lambda_max=l1,
        fit_k_min=k_lo,
        fit_k_max=k_hi,
    )
