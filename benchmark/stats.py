"""Uncertainty of results over seeds: t-intervals of means and of paired differences.

Every number a user reads from a results table comes from a few seeds, so it is reported with its
spread and a 95 % confidence interval (issue 20, "Statistics").  The interval of a mean over n seeds is
Student's t-interval, mean ± t_{n−1, (1+level)/2} · s / √n with the sample standard deviation s
(ddof = 1); it assumes the per-seed values are independent draws of a roughly normal quantity, which
is the usual reading of "n seeds" in the pruning literature, and is wide for n = 3 (t = 4.30), as it
should be.

A claimed gain of a variant over a baseline (method + reparam vs method) is a *paired* difference: the
same seed gives both runs the same initialisation, mask and data order, so the difference per seed
removes that shared variation; its t-interval over the seeds the two share is the gain's interval.  A
gain is *distinguishable from zero* when that interval excludes zero.  With one seed (or one shared
seed) there is no interval: the bounds are NaN and nothing is distinguishable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from scipy import stats as _scipy_stats

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values with its sample standard deviation and confidence interval [lo, hi]."""

    mean: float
    std: float
    n: int
    lo: float
    hi: float
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        """Half the interval's width (the ± of ``mean ± half_width``); NaN without an interval."""
        return (self.hi - self.lo) / 2

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (a distinguishable difference)."""
        return bool(self.lo > 0 or self.hi < 0)

    def text(self, digits: int = 2, signed: bool = False) -> str:
        """``mean ± std [lo, hi]`` (``+`` signs for differences); ``—`` when there is no value."""
        if self.n == 0 or not math.isfinite(self.mean):
            return "—"
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        out = f.format(self.mean)
        if self.n > 1:
            out += f" ± {self.std:.{digits}f} [{f.format(self.lo)}, {f.format(self.hi)}]"
        return out


def t_interval(values: Iterable[float], level: float = LEVEL) -> Estimate:
    """Mean, sample standard deviation (ddof = 1) and Student-t confidence interval of ``values``.

    Non-finite values are not dropped: a NaN makes the estimate NaN (callers pass the values of the
    runs that finished; diverged runs are counted separately, never averaged in).
    """
    x = np.asarray(list(values), dtype=float)
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan, math.nan, level)
    mean = float(x.mean())
    if n == 1:
        return Estimate(mean, 0.0, 1, math.nan, math.nan, level)
    std = float(x.std(ddof=1))
    half = float(_scipy_stats.t.ppf((1 + level) / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(mean, std, n, mean - half, mean + half, level)


def paired_difference(baseline: Mapping[object, float], variant: Mapping[object, float],
                      level: float = LEVEL) -> Estimate:
    """The t-interval of ``variant[s] − baseline[s]`` over the keys (seeds) both have."""
    shared = sorted(set(baseline) & set(variant), key=str)
    return t_interval([variant[s] - baseline[s] for s in shared], level)


def plateau(curve: Iterable[float], tail: float = 0.2) -> float:
    """How much a learning curve still moves at the end: max − min of the per-epoch values over the
    last ``tail`` fraction of epochs, counted from the epoch just before that fraction (for 10 epochs
    and ``tail`` = 0.2: epochs 8, 9, 10).

    The convergence criterion of a CPU recipe (issue 20, point 1; docs/tasks.md): dense training has
    plateaued when the last 20 % of epochs change test accuracy by less than 0.3 points,
    ``plateau(top1_per_epoch) < 0.3``.  NaN for fewer than two epochs.
    """
    values = [float(v) for v in curve]
    if len(values) < 2:
        return math.nan
    k = max(2, math.ceil(tail * len(values)) + 1)
    last = values[-k:]
    return max(last) - min(last)
