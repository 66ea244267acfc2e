"""Confidence intervals and paired differences against hand computations and scipy.stats."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from benchmark.stats import paired_difference, t_interval


def test_t_interval_by_hand():
    e = t_interval([1.0, 2.0, 3.0, 4.0])
    s = math.sqrt(((1.5 ** 2) * 2 + (0.5 ** 2) * 2) / 3)   # ddof = 1: 1.2910
    half = 3.182446 * s / 2                                # t_{3, 0.975} from a t table, sqrt(4) = 2
    assert (e.mean, e.n) == (2.5, 4)
    assert e.std == pytest.approx(s)
    assert (e.lo, e.hi) == pytest.approx((2.5 - half, 2.5 + half), abs=1e-5)
    assert e.half_width == pytest.approx(half, abs=1e-5)


def test_t_interval_matches_scipy():
    x = np.array([88.59, 88.71, 88.32, 88.95, 88.60])
    lo, hi = st.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=st.sem(x))
    e = t_interval(x, level=0.9)
    assert (e.lo, e.hi) == pytest.approx((lo, hi))


def test_one_value_has_no_interval_and_none_is_nan():
    e = t_interval([70.0])
    assert (e.mean, e.std, e.n) == (70.0, 0.0, 1) and math.isnan(e.lo) and not e.excludes_zero
    assert e.text() == "70.00"
    assert t_interval([]).n == 0 and t_interval([]).text() == "—"


def test_paired_difference_uses_shared_seeds_only():
    base = {0: 1.0, 1: 2.0, 2: 3.0}
    variant = {0: 2.0, 1: 2.5, 2: 4.5, 3: 9.0}     # seed 3 has no partner
    e = paired_difference(base, variant)
    # differences 1, 0.5, 1.5: mean 1, std 0.5, half = t_{2, 0.975} * 0.5 / sqrt(3) = 4.302653 * 0.288675
    assert (e.n, e.mean, e.std) == (3, pytest.approx(1.0), pytest.approx(0.5))
    assert e.lo == pytest.approx(1.0 - 4.302653 * 0.5 / math.sqrt(3), abs=1e-5)
    assert not e.excludes_zero                      # -0.24 < 0 < 2.24
    assert e.text(signed=True).startswith("+1.00 ± 0.50 [-0.24, +2.24]")


def test_paired_difference_separates_what_unpaired_cannot():
    # seeds move both runs together: unpaired intervals overlap, the paired one excludes zero
    base = {s: 88.0 + v for s, v in enumerate([-0.5, 0.0, 0.5, 0.2, -0.3])}
    variant = {s: v + 0.1 + d for s, (v, d) in enumerate(zip(base.values(), [0.01, -0.01, 0.02, 0.0, -0.02]))}
    a, b = t_interval(base.values()), t_interval(variant.values())
    assert a.hi > b.lo                              # overlapping marginal intervals
    assert paired_difference(base, variant).excludes_zero


def test_plateau_is_the_range_of_the_last_fifth_of_the_curve():
    from benchmark.stats import plateau

    # 10 epochs: epochs 8, 9, 10 (the one before the last 20 % and the last 20 %)
    curve = [80.0, 84.0, 86.0, 87.0, 88.0, 88.5, 88.9, 89.0, 89.3, 89.1]
    assert plateau(curve) == pytest.approx(0.3)
    assert plateau([50.0, 60.0]) == pytest.approx(10.0) and math.isnan(plateau([1.0]))


def test_the_digits_recipe_converges(tmp_path):
    """The convergence check of docs/tasks.md on the tiny task: dense digits-mlp under its own recipe
    (15 epochs) has plateaued — the last 20 % of epochs move test top-1 by < 0.3 points."""
    import json

    from benchmark.runfolder import run_dir
    from benchmark.runner import execute
    from benchmark.spec import make_spec
    from benchmark.stats import plateau

    spec = make_spec("digits-mlp", "dense", seed=0)
    rec = execute(spec, tmp_path)
    curve = [json.loads(line)["test_top1"] for line in (run_dir(tmp_path, spec.run_id) / "metrics.jsonl").read_text().splitlines()]
    assert len(curve) == 15 and rec["final_top1"] == pytest.approx(curve[-1])
    assert plateau(curve) < 0.3 and curve[-1] > 95.0
    assert plateau(curve[:3]) > 0.3           # three epochs of the same recipe have not plateaued
