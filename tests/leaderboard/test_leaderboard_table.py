"""The standardised table against hand computations (means, ddof-1 std, ranks with ties, gap to dense)."""
from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from leaderboard.table import COLUMNS, aggregate, export_table, format_table, has_parquet
from pruners.registry import ConfigError


def hand_df(synth) -> pd.DataFrame:
    make_run, make_df = synth.make_run, synth.make_df
    runs = [make_run(pruner="dense", seed=s, final_top1=v, train_time_s=10.0) for s, v in ((0, 90.0), (1, 92.0), (2, 94.0))]
    # A: mean 83, std (ddof 1) sqrt(((-3)^2 + (-1)^2 + 4^2) / 2) = sqrt(13); one run collapsed
    runs += [make_run(pruner="magnitude", seed=s, final_top1=v, train_time_s=5.0, collapse=int(s == 2),
                      achieved_sparsity=a)
             for s, v, a in ((0, 80.0, 0.89), (1, 82.0, 0.90), (2, 87.0, 0.91))]
    # B: mean 83.004 -> rounds to 83.00: ties with A; one failed run does not count
    runs += [make_run(pruner="random", allocation="uniform", seed=s, final_top1=v, train_time_s=20.0)
             for s, v in ((0, 84.004), (1, 82.004))]
    runs.append(make_run(pruner="random", allocation="uniform", seed=2, status="failed", final_top1=None))
    # C: one ok seed (std 0) and one diverged run
    runs.append(make_run(pruner="snip", seed=0, final_top1=70.0))
    runs.append(make_run(pruner="snip", seed=1, status="diverged", final_top1=float("nan")))
    # D: beats the tie by 0.006 after rounding
    runs.append(make_run(pruner="rigl", allocation="erk", seed=0, final_top1=83.006))
    return make_df(runs)


def row(agg: pd.DataFrame, method: str, sparsity: float = 0.9) -> pd.Series:
    sub = agg[(agg["method"] == method) & (agg["target_sparsity"] == sparsity)]
    assert len(sub) == 1, sub
    return sub.iloc[0]


def test_aggregate_matches_hand_computation(synth):
    agg = aggregate(hand_df(synth))
    assert list(agg.columns) == COLUMNS
    dense = row(agg, "dense", 0.0)
    assert dense["top1_mean"] == pytest.approx(92.0)
    assert dense["top1_std"] == pytest.approx(2.0)  # sqrt((4 + 0 + 4) / 2)
    assert dense["rank"] == 1 and dense["gap_to_dense"] == pytest.approx(0.0)

    a = row(agg, "magnitude/global")
    assert a["top1_mean"] == pytest.approx(83.0)
    assert a["top1_std"] == pytest.approx(math.sqrt(13.0))
    assert a["seeds"] == 3 and a["runs"] == 3
    assert a["gap_to_dense"] == pytest.approx(83.0 - 92.0)
    assert a["achieved_sparsity"] == pytest.approx(0.90)
    assert a["train_time_rel"] == pytest.approx(0.5)
    assert a["train_flops_rel"] == pytest.approx(0.1)
    assert a["collapsed"] == 1 and a["diverged"] == 0 and a["failed"] == 0

    b = row(agg, "random/uniform")
    assert b["top1_mean"] == pytest.approx(83.004)
    assert b["top1_std"] == pytest.approx(math.sqrt(2.0))
    assert (b["seeds"], b["runs"], b["failed"]) == (2, 3, 1)
    assert b["train_time_rel"] == pytest.approx(2.0)
    assert len(b["run_ids"]) == 3

    c = row(agg, "snip/global")
    assert (c["seeds"], c["top1_std"], c["diverged"]) == (1, 0.0, 1)

    # ranks: D 83.006 -> 83.01 first; A 83.00 and B 83.004 -> 83.00 tie at 2 ('min'); C after two ties -> 4
    assert [row(agg, m)["rank"] for m in ("rigl/erk", "magnitude/global", "random/uniform", "snip/global")] == [1, 2, 2, 4]
    # sorted by rank within (task, sparsity)
    sub = agg[agg["target_sparsity"] == 0.9]
    assert list(sub["rank"]) == sorted(sub["rank"])


def test_unranked_without_ok_runs_and_gap_without_dense(synth):
    make_run, make_df = synth.make_run, synth.make_df
    df = make_df([make_run(pruner="magnitude", final_top1=None, status="failed"),
                  make_run(pruner="random", allocation="uniform", final_top1=60.0)])
    agg = aggregate(df)
    assert pd.isna(row(agg, "magnitude/global")["rank"])
    assert row(agg, "random/uniform")["rank"] == 1
    assert math.isnan(row(agg, "random/uniform")["gap_to_dense"])  # no dense run for the task
    assert list(agg["method"]) == ["random/uniform", "magnitude/global"]  # unranked last


def test_hyperparameter_variants_and_recipes_are_kept_apart(synth):
    make_run, make_df = synth.make_run, synth.make_df
    df = make_df([make_run(pruner="snip", pruner_args={"batches": 1}, final_top1=60.0),
                  make_run(pruner="snip", pruner_args={"batches": 2}, final_top1=70.0),
                  make_run(pruner="magnitude", reparam="signin", reparam_args={"p": 1}, final_top1=50.0),
                  make_run(pruner="magnitude", reparam="signin", reparam_args={"p": 2}, final_top1=55.0),
                  make_run(task="t2", pruner="magnitude", epochs=3, final_top1=40.0),
                  make_run(task="t2", pruner="magnitude", epochs=9, final_top1=45.0),
                  # a recipe key added later (absent from older specs) does not split the task
                  make_run(task="t3", pruner="magnitude", seed=0, final_top1=30.0),
                  make_run(task="t3", pruner="magnitude", seed=1, final_top1=32.0,
                           spec={"task": "t3", "seed": 1, "recipe": {"lr": 0.1, "epochs": 3, "eval_every": 1}})])
    agg = aggregate(df)
    assert set(agg["method"]) == {"snip/global[batches=1]", "snip/global[batches=2]", "magnitude/global+signin[p=1]",
                                  "magnitude/global+signin[p=2]", "magnitude/global"}
    assert row(agg, "snip/global[batches=2]")["top1_mean"] == 70.0
    assert set(agg["task"]) == {"toy", "t2[epochs=3]", "t2[epochs=9]", "t3"}
    assert row(agg[agg["task"] == "t3"], "magnitude/global")["seeds"] == 2
    assert set(agg.loc[agg["method"] == "magnitude/global+signin[p=1]", "family"]) == {"reparam"}


def test_repeated_seed_counts_once(synth):
    make_run, make_df = synth.make_run, synth.make_df
    # the same training with and without the graphon analysis (two run ids, one seed)
    df = make_df([make_run(seed=0, final_top1=80.0, run_id="a" * 16), make_run(seed=0, final_top1=80.0, run_id="b" * 16),
                  make_run(seed=1, final_top1=90.0)])
    r = row(aggregate(df), "magnitude/global")
    assert (r["seeds"], r["runs"]) == (2, 3)
    assert r["top1_mean"] == pytest.approx(85.0)
    assert r["top1_std"] == pytest.approx(math.sqrt(50.0))  # two seeds: 80, 90


def test_empty(synth):
    make_df = synth.make_df
    agg = aggregate(make_df([]))
    assert agg.empty and list(agg.columns) == COLUMNS
    assert "task" in format_table(agg, "md")


def test_formats(synth):
    agg = aggregate(hand_df(synth))
    latex = format_table(agg, "latex")
    assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex
    # pdflatex without unicode packages: the symbols are macros, not raw ± Δ — (issue 21, newcomer list)
    assert not {"±", "Δ", "—"} & set(latex) and "83.00 $\\pm$ 3.61" in latex and "$\\Delta$ dense" in latex
    md = format_table(agg, "md")
    assert md.splitlines()[0].startswith("| task") and "83.00 ± 3.61" in md
    back = pd.read_csv(io.StringIO(format_table(agg, "csv")))
    assert list(back.columns) == COLUMNS
    assert back["top1_mean"].tolist() == pytest.approx(agg["top1_mean"].tolist(), nan_ok=True)
    assert back.loc[back["method"] == "random/uniform", "run_ids"].iloc[0].count(" ") == 2
    with pytest.raises(ConfigError, match="format"):
        format_table(agg, "html")


def test_exports(tmp_path, synth):
    agg = aggregate(hand_df(synth))
    for name in ("t.csv", "t.md", "t.tex", "t.txt"):
        assert export_table(agg, tmp_path / name).read_text(encoding="utf-8").strip()
    with pytest.raises(ConfigError, match="file type"):
        export_table(agg, tmp_path / "t.xlsx")
    if has_parquet():
        back = pd.read_parquet(export_table(agg, tmp_path / "t.parquet"))
        assert back["top1_mean"].tolist() == pytest.approx(agg["top1_mean"].tolist(), nan_ok=True)
    else:
        with pytest.raises(ConfigError, match="pyarrow"):
            export_table(agg, tmp_path / "t.parquet")


def test_mean_carries_its_t_interval(synth):
    a = row(aggregate(hand_df(synth)), "magnitude/global")
    half = 4.302653 * math.sqrt(13.0) / math.sqrt(3)      # t_{2, 0.975} · s / √n
    assert (a["top1_ci_lo"], a["top1_ci_hi"]) == pytest.approx((83.0 - half, 83.0 + half), abs=1e-4)
    c = row(aggregate(hand_df(synth)), "snip/global")      # one ok seed: no interval
    assert math.isnan(c["top1_ci_lo"])
    assert "95 % CI" in format_table(aggregate(hand_df(synth)), "md")


def test_paired_gains_pair_by_seed_and_count_divergence(synth):
    from leaderboard.table import paired_gains

    runs = [synth.make_run(pruner="random", seed=s, final_top1=v) for s, v in enumerate([80.0, 82.0, 84.0])]
    # + HAM: +1.0, +1.2, +0.8 on the same seeds (paired interval excludes 0 although the seeds spread by 4)
    runs += [synth.make_run(pruner="random", reparam="ham", seed=s, final_top1=v)
             for s, v in enumerate([81.0, 83.2, 84.8])]
    # + Sign-In: one seed diverged, two pairs left: +0.5, -0.5
    runs += [synth.make_run(pruner="random", reparam="signin", seed=0, final_top1=80.5),
             synth.make_run(pruner="random", reparam="signin", seed=1, final_top1=81.5),
             synth.make_run(pruner="random", reparam="signin", seed=2, status="diverged", final_top1=float("nan"))]
    g = paired_gains(synth.make_df(runs)).set_index("reparam")
    ham, signin = g.loc["ham"], g.loc["signin"]
    assert (ham["pairs"], ham["gain_mean"], ham["gain_std"]) == (3, pytest.approx(1.0), pytest.approx(0.2))
    assert ham["gain_lo"] == pytest.approx(1.0 - 4.302653 * 0.2 / math.sqrt(3), abs=1e-5) and ham["distinguishable"]
    assert (signin["pairs"], signin["gain_mean"], signin["variant_diverged"]) == (2, pytest.approx(0.0), 1)
    assert not signin["distinguishable"]
    text = format_table(paired_gains(synth.make_df(runs)), "md", gains=True)
    assert "+1.00 ± 0.20 [+0.50, +1.50]" in text and "| yes " in text


def test_anytime_averages_each_step_count_over_seeds(synth):
    from leaderboard.table import anytime

    runs = [synth.make_run(pruner="random", seed=s, final_top1=end, anytime_top1={"300": a, "1000": b})
            for s, (a, b, end) in enumerate([(60.0, 70.0, 80.0), (62.0, 74.0, 82.0)])]
    runs.append(synth.make_run(pruner="random", seed=2, status="diverged", final_top1=float("nan"),
                               anytime_top1={"300": 10.0}))             # a diverged run is not averaged in
    a = anytime(synth.make_df(runs)).iloc[0]
    assert (a["seeds"], a["top1@300"], a["top1@1000"], a["top1@end"]) == (2, 61.0, 72.0, 81.0)
    assert list(anytime(synth.make_df(runs)).columns[-3:]) == ["top1@300", "top1@1000", "top1@end"]


def test_markdown_export_escapes_hostile_names(synth):
    """A plugin's name reaches the Markdown table as text: no raw tag, link or broken column."""
    hostile = "<script>alert(1)</script>[x](javascript:alert(1))|`y`"
    md = format_table(aggregate(synth.make_df([synth.make_run(pruner=hostile, seed=s) for s in (0, 1)])), "md")
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\[x\\](javascript" in md and "\\|" in md and "\\`y\\`" in md
    header, rule, row = md.splitlines()[:3]
    assert row.replace("\\|", "").count("|") == header.count("|"), "the name does not add a column"


def test_records_older_than_the_schedule_column_label_without_a_schedule():
    """A result.json written before schema 5 has no schedule: the store backfills '' (the pruner's own
    schedule) and a NaN left in a DataFrame never becomes 'random@nan/erk'."""
    from benchmark.schema import COLUMN_NAMES
    from benchmark.store import _row
    from leaderboard.table import base_label

    row = dict(zip(COLUMN_NAMES, _row({"run_id": "x", "pruner": "random"})))
    assert row["schedule"] == "" and row["schedule_args"] == "{}"
    assert base_label({"pruner": "random", "schedule": float("nan"), "allocation": "erk"}) == "random/erk"
    assert base_label({"pruner": "snip", "schedule": "gradual", "allocation": "global"}) == "snip@gradual/global"


def test_chance_level_cells_are_marked_and_not_ranked(synth):
    """Issue 24 (3): on a 10-class dataset (chance 10 %), cells within CHANCE_MARGIN of it get no rank —
    a method at 10.14 % is never 'rank 1' because every other method failed too."""
    from leaderboard.table import CHANCE_MARGIN, display_frame

    runs = [synth.make_run(pruner=p, dataset="digits", seed=s, target_sparsity=sp, final_top1=top1)
            for s in (0, 1) for p, sp, top1 in (("magnitude", 0.98, 10.14), ("random", 0.98, 10.0 + CHANCE_MARGIN),
                                               ("magnitude", 0.9, 10.14), ("random", 0.9, 60.0))]
    agg = aggregate(synth.make_df(runs)).set_index(["pruner", "target_sparsity"])
    assert agg["chance_top1"].eq(10.0).all()
    assert agg.loc[("magnitude", 0.98), "at_chance"] and agg.loc[("random", 0.98), "at_chance"]
    assert agg.loc[[("magnitude", 0.98), ("random", 0.98), ("magnitude", 0.9)], "rank"].isna().all()
    assert agg.loc[("random", 0.9), "rank"] == 1 and not agg.loc[("random", 0.9), "at_chance"]
    assert set(display_frame(agg.reset_index())["rank"]) == {"chance", "1"}
    # a regression dataset (no classes) is never 'at chance'
    reg = aggregate(synth.make_df([synth.make_run(dataset="sparse-regression", final_top1=1.0)]))
    assert not reg["at_chance"].any() and reg["chance_top1"].isna().all()


def test_seeds_stuck_at_chance_are_counted_per_cell(synth):
    """Issue 20 (3): a cell where one seed trains and two never leave chance (sparse LeNet-5 at 95 %)
    shows 2 seeds at chance beside its mean, which alone would read as a poor method."""
    from leaderboard.table import display_frame

    runs = [synth.make_run(pruner="random", dataset="digits", seed=s, target_sparsity=0.95, final_top1=t)
            for s, t in ((0, 10.0), (1, 83.0), (2, 11.5))]
    runs += [synth.make_run(pruner="magnitude", dataset="digits", seed=s, target_sparsity=0.95, final_top1=80.0 + s)
             for s in (0, 1, 2)]
    agg = aggregate(synth.make_df(runs)).set_index("pruner")
    assert agg.loc["random", "seeds_at_chance"] == 2 and not agg.loc["random", "at_chance"]
    assert agg.loc["magnitude", "seeds_at_chance"] == 0
    shown = display_frame(agg.reset_index())["seeds at chance"]
    assert dict(zip(agg.index, shown)) == {"random": "2", "magnitude": "0"}


def test_the_csr_column_shows_only_when_a_run_measured_it(synth):
    """Issue 24 (3): a column that would be '—' in every row is left out."""
    from leaderboard.table import display_frame

    plain = aggregate(synth.make_df([synth.make_run(seed=s) for s in (0, 1)]))
    assert "CSR speed-up" not in display_frame(plain).columns
    assert "train time (wall, × dense)" in display_frame(plain).columns
    measured = aggregate(synth.make_df([synth.make_run(seed=s, sparse_speedup=1.5) for s in (0, 1)]))
    assert display_frame(measured)["CSR speed-up"].tolist() == ["1.50"]
