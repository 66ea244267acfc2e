"""The six theory-toy reproductions at their --quick size: each asserts the qualitative claim (or, where
the claim does not hold in our setting, the mechanism the page explains), plus the registry, the pages,
the index and the CLI."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.reproduce import REPRODUCTIONS, Result, get_reproduction, register_reproduction, reproduce
from benchmark.reproduce.writer import page_verdict, render_index
from pruners.registry import ConfigError

TOYS = ["pilot-diagonal", "ham-regression", "signin-neuron", "never-saddle", "mirror-wd-off", "nanoadam-toy"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reproductions")


@pytest.fixture(scope="module")
def results(out) -> dict[str, Result]:
    torch.set_num_threads(1)
    return {}


def _get(results: dict, out: Path, name: str) -> Result:
    if name not in results:
        results[name] = reproduce(name, quick=True, out_dir=out)
    return results[name]


def test_registry_lists_the_six_toys_with_source_and_claim() -> None:
    for name in TOYS:
        rep = get_reproduction(name)
        assert rep.source and rep.claim and callable(rep.run)


def test_pilot_diagonal(results, out) -> None:
    r = _get(results, out, "pilot-diagonal")
    t = r.table.set_index("run")
    pilot = t.loc["pilot geometric α = 0.5"]
    assert pilot.rel_error_max < 0.05                     # PILoT with a decaying schedule reaches x*
    assert t[t.method == "spred"].rel_error_mean.min() > 0.10  # spred (γ = 0) does not
    # (the L1-on-x part depends on the decay speed: it holds at this size and not at the full one; the page says why)
    assert r.checks["PILoT (decaying) reaches x* (relative error < 5 % for every init)"]


def test_ham_regression(results, out) -> None:
    r = _get(results, out, "ham-regression")
    t = r.table.set_index("run")
    gd, ham, mw = t.loc["gd"], t.loc["gd+ham α=4"], t.loc["m⊙w γ=0.5"]
    # L2 → L1-like: HAM's solution has a smaller L1 norm and is closer to the sparse truth than GD's
    assert ham.l1_over_l1_star < gd.l1_over_l1_star and ham.rel_error < gd.rel_error
    # no slow-down near zero: HAM fits no later than GD; m ⊙ w with the same metric shape (γ = 2/α) is slower
    assert ham.t_fit <= gd.t_fit and mw.t_fit > 2 * ham.t_fit
    assert (t.final_train_mse < 1e-4).all()


def test_signin_neuron(results, out) -> None:
    r = _get(results, out, "signin-neuron")
    t = r.table.set_index(["method", "sign_a0", "sign_w0"])
    assert t.loc[("gradient flow", "+", "+")].fraction == 1.0
    from benchmark.reproduce.signin_neuron import PER_LAYER

    for m in ("gradient flow", PER_LAYER, "Sign-In (both layers)", "Sign-In (outer weight a only)"):
        assert t.loc[(m, "+", "−")].recovered == 0 and t.loc[(m, "−", "−")].recovered == 0  # nothing fixes w < 0
        # the (−, +) successes are exactly those the conservation law predicts
        assert t.loc[(m, "−", "+")].recovered == t.loc[(m, "−", "+")].predicted
    # reparameterising the outer weight recovers (−, +) initialisations gradient flow cannot; on both
    # layers the conserved quantity is the same as gradient flow's, so the claim fails there (the page says so)
    assert t.loc[("Sign-In (outer weight a only)", "−", "+")].recovered > t.loc[("gradient flow", "−", "+")].recovered
    assert t.loc[("Sign-In (both layers)", "−", "+")].recovered == t.loc[("gradient flow", "−", "+")].recovered
    # per-layer targets with the outer weight's larger (the theorem's case): strictly more than gradient flow
    assert t.loc[(PER_LAYER, "−", "+")].recovered > t.loc[("gradient flow", "−", "+")].recovered
    assert r.verdict


def test_never_saddle(results, out) -> None:
    r = _get(results, out, "never-saddle")
    t = r.table
    gd, sd = t[t.q == 2.0].set_index("lam"), t[t.q == 1.0].set_index("lam")
    for lam in gd.index:  # sign descent leaves the saddle long before GD at the same small lr
        assert sd.escape_steps.loc[lam] * 5 <= gd.escape_steps.loc[lam]
    # the escape constant μ = λ^{q(L−1)}: first-step speed exponents 4 (GD) and 2 (sign descent)
    assert gd.speed_exponent_fit.iloc[0] == pytest.approx(4.0, abs=0.05)
    assert sd.speed_exponent_fit.iloc[0] == pytest.approx(2.0, abs=0.05)
    (balance,) = [ok for name, ok in r.checks.items() if name.startswith("balance law")]
    assert balance  # < 1 % at η/4, and the error shrinks as η does (the law is the flow's)
    assert r.verdict       # the claim as the paper states it: μ = λ^{q(L−1)}, earlier escape, balance law


def test_mirror_wd_off(results, out) -> None:
    r = _get(results, out, "mirror-wd-off")
    t = r.table
    assert r.verdict and all(r.checks.values())
    same = t[t.dose == 2.5]
    assert len(same) == 2 and same.wd.nunique() == 2            # equal dose reached with different wd / T_off
    assert same.wd_dose.to_numpy() == pytest.approx([2.5, 2.5])  # the reparam's own dose accounting
    l1 = t.groupby("dose").l1.mean()
    assert l1.is_monotonic_decreasing                           # more dose, sparser
    dosed = t[t.dose > 0]
    assert (dosed.gamma_change_after_off < 0.01).all()           # stored after switch-off
    for _, row in dosed.iterrows():
        assert row.gamma_mean == pytest.approx(math.exp(-2 * row.dose), rel=0.05)


def test_nanoadam_toy(results, out) -> None:
    r = _get(results, out, "nanoadam-toy")
    t = r.table.set_index("update")
    pre = t.loc["pretrained (before fine-tuning)"].test_loss_mean
    for kind in ("small weights", "large gradients", "full"):
        assert t.loc[kind].test_loss_mean < 0.1 * pre  # every fine-tuning learns the extra neuron
        assert t.loc[kind].l2_shift_mean > 0
    sw, lg = t.loc["small weights"], t.loc["large gradients"]
    (loss_check,) = [v for k, v in r.checks.items() if k.startswith("small weights reach a lower mean test loss")]
    assert loss_check == (sw.test_loss_mean < lg.test_loss_mean)
    assert "## Diagnosis" in (out / "nanoadam-toy.md").read_text(encoding="utf-8") or r.verdict
    assert r.verdict == (sw.test_loss_mean < lg.test_loss_mean and sw.l2_shift_mean < lg.l2_shift_mean)


def test_nanoadam_selection_updates_only_the_smallest_entries() -> None:
    from benchmark.reproduce.nanoadam_toy import _select

    p = torch.tensor([[3.0, -0.1, 2.0, 0.5, -4.0], [0.2, 0.3, -0.05, 9.0, 1.0]], dtype=torch.float64)
    g = torch.tensor([[0.0, 1.0, -5.0, 0.1, 0.2], [4.0, 0.0, 0.0, -3.0, 0.1]], dtype=torch.float64)
    assert sorted(_select("small weights", p, g, 0.4).tolist()) == [1, 3, 5, 7]  # per seed: 2 smallest |θ|
    assert sorted(_select("large gradients", p, g, 0.4).tolist()) == [1, 2, 5, 8]  # per seed: 2 largest |∇|


def test_pages_and_index(results, out) -> None:
    r = _get(results, out, "mirror-wd-off")
    page = (out / "mirror-wd-off.md").read_text(encoding="utf-8")
    for part in ("# Reproduction `mirror-wd-off`", "**Source:**", "**Claim:**", "| published |", "| ours (quick size) |",
                 "## Setting", "## Results", "![mirror-wd-off](mirror-wd-off.png)", "## Differences from the paper",
                 "sparsebench reproduce mirror-wd-off --quick"):
        assert part in page
    assert r.verdict_line in page
    png = out / "mirror-wd-off.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    index = (out / "README.md").read_text(encoding="utf-8")
    for name in TOYS:
        assert f"[`{name}`]({name}.md)" in index
    assert page_verdict(out / "mirror-wd-off.md") == "holds (quick size)"
    assert page_verdict(out / "no-such-page.md") == "not run"


def test_register_and_render_a_new_reproduction(tmp_path) -> None:
    @register_reproduction("test-dummy-claim", source="Test paper, Table 0", claim="one plus one is two")
    def run(quick: bool, out_dir: Path) -> Result:
        return Result(table=pd.DataFrame([{"a": 1, "b|c": 2.5}]), figure=None, published="2", ours=str(1 + 1),
                      verdict=1 + 1 == 2, verdict_line="1 + 1 = 2.", setting="* arithmetic",
                      differences=["none"], checks={"sum": True})
    try:
        res = reproduce("test-dummy-claim", quick=False, out_dir=tmp_path)
        text = (tmp_path / "test-dummy-claim.md").read_text(encoding="utf-8")
        assert res.verdict and "the claim HOLDS" in text and "b\\|c" in text
        assert "| [`test-dummy-claim`](test-dummy-claim.md) | Test paper, Table 0 | one plus one is two | holds |" in \
            render_index(tmp_path)
        with pytest.raises(ConfigError):
            register_reproduction("test-dummy-claim", source="x", claim="y")(run)
    finally:
        REPRODUCTIONS.unregister("test-dummy-claim")


def test_cli_list_and_bad_names(tmp_path, capsys) -> None:
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in TOYS:
        assert name in listed
    assert "Fig. 1" in listed
    target = tmp_path / "pages"
    assert main(["reproduce", "pilot-diagonl", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'pilot-diagonal'" in err
    assert not target.exists()  # nothing written
    assert main(["reproduce"]) == 2
    assert "needs a NAME" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown reproduction"):
        get_reproduction("nope")


def test_reproduce_writes_into_a_results_folder_by_default_not_the_committed_pages():
    """Issue 21 (newcomer list): a user's run must not overwrite docs/reproductions."""
    from benchmark.cli import build_parser
    from benchmark.reproduce import DEFAULT_OUT

    args = build_parser().parse_args(["reproduce", "pilot-diagonal"])
    assert Path(args.out) == DEFAULT_OUT == Path("results/reproductions")
