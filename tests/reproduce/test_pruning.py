"""The four pruning reproductions (graphon-convergence, graphon-ntk, synflow-collapse, signin-ham-table) at
their --quick size: each asserts the qualitative claim where the quick size can show it (or the mechanism
the page explains where the claim does not hold), plus hand-computed checks of the helpers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.reproduce import Result, get_reproduction, reproduce

PRUNING = ["graphon-convergence", "graphon-ntk", "synflow-collapse", "signin-ham-table"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reproductions")


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {}


def _get(results: dict, out: Path, name: str) -> Result:
    if name not in results:
        results[name] = reproduce(name, quick=True, out_dir=out)
    return results[name]


def test_registered_with_source_and_claim() -> None:
    for name in PRUNING:
        rep = get_reproduction(name)
        assert rep.source and rep.claim and callable(rep.run)


# ---------------------------------------------------------------------------------------------- helpers
def test_block_fit_r2_hand_computed() -> None:
    from benchmark.reproduce.graphon_convergence import block_fit_r2

    w = np.zeros((8, 8))
    w[:3, :5] = 0.6                                   # an exact two-level block graphon
    r2, i, j = block_fit_r2(w)
    assert r2 == pytest.approx(1.0) and (i, j) == (3, 5)
    assert block_fit_r2(np.full((6, 6), 0.3))[0] == 0.0
    # a linear ramp over K = 64 rows: the best split halves it; R² = 1 − ((K/2)² − 1) / (K² − 1)
    ramp = np.repeat(np.arange(64.0)[:, None], 64, axis=1)
    r2, i, _ = block_fit_r2(ramp)
    assert i == 32 and r2 == pytest.approx(1 - (32 ** 2 - 1) / (64 ** 2 - 1), abs=1e-12)
    # three levels: the 2 × 2 fit cannot be exact; brute force over all splits agrees
    rng = np.random.default_rng(0)
    m = rng.random((7, 5))
    best = 0.0
    for a in range(1, 7):
        for b in range(1, 5):
            fit = m.copy()
            for rs in (slice(0, a), slice(a, 7)):
                for cs in (slice(0, b), slice(b, 5)):
                    fit[rs, cs] = m[rs, cs].mean()
            best = max(best, 1 - ((m - fit) ** 2).sum() / ((m - m.mean()) ** 2).sum())
    assert block_fit_r2(m)[0] == pytest.approx(best, abs=1e-12)


def test_critical_compression_bisects_a_known_threshold() -> None:
    from benchmark.reproduce.synflow_collapse import critical_compression

    calls = []

    def prune(sparsity: float):                       # collapses beyond compression 10^1.3
        calls.append(sparsity)
        lr = -math.log10(1 - sparsity)
        return lr > 1.3, "x" if lr > 1.3 else "", sparsity

    res = critical_compression(prune, [0.5, 1.0, 1.5, 2.0], bisect_steps=3)
    assert res["first_collapse"] == pytest.approx(1.5)        # the walk stops at the first collapse
    assert len(calls) == 3 + 3
    assert 1.25 <= res["critical"] <= 1.3 < res["critical_bound"] <= 1.3125  # bracket of width 0.5 / 2³
    never = critical_compression(lambda s: (False, "", s), [0.5, 1.0], bisect_steps=2)
    assert math.isnan(never["first_collapse"]) and never["critical"] == 1.0


def test_judge_needs_every_interval_above_zero() -> None:
    from benchmark.reproduce.signin_ham_table import judge

    g = lambda *iv: pd.DataFrame({"gain_lo": [lo for lo, _ in iv], "gain_hi": [hi for _, hi in iv]})  # noqa: E731
    assert judge(g((0.1, 0.5), (0.2, 0.9))) == "shown"
    assert judge(g((0.1, 0.5), (-0.2, 0.9))) == "not distinguishable"   # one interval straddles 0
    assert judge(g((0.1, 0.5), (-0.9, -0.2))) == "contradicted"         # one lies below 0
    assert judge(g()) == "no data"


def test_quick_grid_keeps_the_full_grids_methods() -> None:
    from benchmark.grid import load_grid
    from benchmark.reproduce.signin_ham_table import GRIDS, quick_grid_text

    full = load_grid(GRIDS[0])
    q = Path(__file__).parent / "_tmp_quick_grid.toml"
    try:
        q.write_text(quick_grid_text(GRIDS[0].read_text(encoding="utf-8")), encoding="utf-8")
        quick = load_grid(q)
    finally:
        q.unlink(missing_ok=True)

    def methods(g) -> set:
        return {(s.pruner, str(s.pruner_args), s.allocation, s.reparam, str(s.reparam_args)) for s in g.specs}

    assert methods(quick) == methods(full)
    assert {s.task for s in quick.specs} == {"digits-mlp"} and {s.seed for s in quick.specs} == {0, 1}
    assert {str(s.recipe.get("eval_at_steps")) for s in quick.specs} == {str(s.recipe.get("eval_at_steps")) for s in full.specs}
    # the table grid: 3 bases × 3 reparams × 3 sparsities + dense / dense + HAM, per task and seed
    assert len(full.specs) == (27 + 2) * len({s.seed for s in full.specs}) * len({s.task for s in full.specs})


# ---------------------------------------------------------------------------------------- reproductions
def test_graphon_convergence(results, out) -> None:
    r = _get(results, out, "graphon-convergence")
    t = r.table.set_index(r.table.pruner.str.split(" ").str[0])
    dcols = [c for c in t.columns if c.startswith("d(")]
    const = [c for c in t.columns if c.startswith("dist. to const.")][0]
    dead = [c for c in t.columns if c.startswith("dead share")][0]
    for name in t.index:                              # every method's masks converge with width
        assert t.loc[name, dcols[0]] > t.loc[name, dcols[-1]]
    for flat in ("random", "magnitude"):              # constant graphons, structured ones are far from constant
        assert t.loc[flat, const] < 0.5 * min(t.loc[s, const] for s in ("snip", "grasp", "synflow"))
        assert t.loc[flat, dead] == 0.0
    others = [n for n in t.index if n != "synflow"]   # SynFlow (100 rounds): block-like, most dead neurons
    assert all(t.loc["synflow", "block R² (2×2)"] > t.loc[n, "block R² (2×2)"] + 0.1 for n in others)
    assert all(t.loc["synflow", dead] > t.loc[n, dead] for n in others)
    assert r.verdict and r.figure.exists() and (out / "graphon-convergence.md").exists()


def test_graphon_ntk(results, out) -> None:
    from benchmark.analysis import PrunerSpec
    from benchmark.reproduce.graphon_ntk import _config, input_ablation

    r = _get(results, out, "graphon-ntk")
    t = r.table.set_index(["method", "sparsity"])
    # the early-loss part of the claim: SNIP and SynFlow lower the loss faster than Random at 80 %
    for m in ("snip", "synflow"):
        assert t.loc[(m, 0.8), "mean loss"] < t.loc[("random", 0.8), "mean loss"]
    # path density (the kernel's scale) falls with sparsity and is lowest for Random
    for m in ("random", "snip", "synflow"):
        p = [t.loc[(m, s), "λ1/λ1(dense)"] for s in (0.5, 0.8, 0.95)]
        assert p[0] > p[1] > p[2]
    assert t.loc[("random", 0.95), "λ1/λ1(dense)"] < t.loc[("snip", 0.95), "λ1/λ1(dense)"]
    # the path-density caveat: with a constant input graphon the hidden graphons only rescale Θ, so the
    # top-5 energy is the dense network's whatever the method (here SNIP's masks at 95 %)
    cfg = _config(True)
    a = input_ablation(cfg["task"], PrunerSpec("snip"), 0.95, width=cfg["width"], depth=cfg["depth"], K=cfg["K"],
                       samples=cfg["samples"])
    assert a["const_input"] == pytest.approx(t.loc[("dense", 0.0), "top-5 energy"], abs=1e-9)
    assert abs(a["as pruned"] - a["const_input"]) > 1e-6   # the input mask is what moves it
    assert set(r.checks) and r.figure.exists()


def test_synflow_collapse(results, out) -> None:
    r = _get(results, out, "synflow-collapse")
    t = r.table
    for net, g in t.groupby("network"):
        g = g.set_index(g.method.str.split(" ").str[0])
        crit = g["critical compression"]
        assert all(crit[m] < crit["synflow"] for m in crit.index if m != "synflow")   # SynFlow collapses last
        assert (g["critical compression"] <= g["bound N/L"]).all()     # no method beats the N/L bound
    assert r.verdict and r.figure.exists()


def test_signin_ham_table_pipeline(results, out) -> None:
    from benchmark.reproduce.signin_ham_table import PUBLISHED

    r = _get(results, out, "signin-ham-table")
    t = r.table
    # every base × reparam pair of the grid ran through the driver (quick: digits, 90 %, two seeds) and
    # is reported as a paired gain over its base, with AC/DC and RigL also against random PaI
    assert set(t.comparison) == {f"{b}{x} vs {b}" for b in ("Random", "AC/DC", "RigL") for x in (" + Sign-In", " + HAM")} \
        | {"AC/DC vs Random", "RigL vs Random"}
    assert (t.pairs == 2).all()
    assert t["ours: paired gain [95 % CI]"].str.match(r"^[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]").all()
    # the published ImageNet gain stands beside ours
    assert t.set_index("comparison").loc["Random + HAM vs Random", "published (ImageNet)"] == "+1.16"  # 72.72 − 71.56
    assert "Random + HAM +0.97 / +1.16 / +1.33" in r.published   # 74.84 − 73.87, 72.72 − 71.56, 70.05 − 68.72
    assert PUBLISHED[("acdc", "ham")][2] - PUBLISHED[("acdc", "none")][2] == pytest.approx(2.86)
    assert len(r.checks) == 5 and r.figure.exists()    # HAM per base (3), Sign-In on random, D2S > random
    assert r.verdict or "## Diagnosis" in (out / "signin-ham-table.md").read_text(encoding="utf-8")
