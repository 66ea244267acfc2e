"""The generated tables of a docs/results-*.md page, from a results folder.

    python scripts/results_page.py results/signin-ham [--grid NAME ...] > /tmp/tables.md

Prints Markdown (the template leaderboard/templates/results.md): the run count by status and the CPU time, the standard table of ``sparsebench table``
(final test top-1 mean ± sample std over seeds, its 95 % Student-t interval, seeds, gap to dense,
diverged / failed runs), the paired gain of every reparam over the same method with plain weights
(``sparsebench table --gains``: per-seed differences, their mean, std and 95 % t-interval, and whether
the interval excludes zero), the anytime accuracy (mean top-1 after the recipe's ``eval_at_steps`` and
at the end) and, where random PaI runs with a reparameterisation, the sign flips of random PaI (kept weights
whose sign differs from initialisation at the end, mean over seeds; Sign-In's and HAM's mechanism).  Every number comes from :mod:`leaderboard.table`; this script only selects and formats.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from tabulate import tabulate

import benchmark
from leaderboard.table import add_method, aggregate, anytime, display_frame, format_table, paired_gains
from leaderboard.templating import markdown_env

GRIDS = Path(__file__).resolve().parents[1] / "grids"
TABLE_COLUMNS = ["task", "target (%)", "rank", "method", "top-1 (%)", "95 % CI", "seeds", "Δ dense",
                 "achieved (%)", "collapsed", "seeds at chance", "diverged/failed"]


def md(frame: pd.DataFrame) -> str:
    return tabulate(frame.values.tolist(), headers=list(frame.columns), tablefmt="github", disable_numparse=True)


def sign_flips(df: pd.DataFrame) -> str:
    """Mean sign flips of the random PaI runs per task, sparsity and method, when some of them train
    with a reparameterisation (else "")."""
    if "sign_flips" not in df:
        return ""
    d = add_method(df[(df["status"] == "ok") & (df["pruner"] == "random") & df["sign_flips"].notna()])
    if d.empty or d["reparam"].fillna("none").eq("none").all():
        return ""
    f = d.groupby(["task", "target_sparsity", "method"], as_index=False).agg(
        flips=("sign_flips", "mean"), seeds=("seed", "nunique")).sort_values(["task", "method", "target_sparsity"])
    return md(pd.DataFrame({"task": f["task"], "method": f["method"],
                            "target (%)": (100 * f["target_sparsity"]).map(lambda v: f"{v:g}"),
                            "seeds": f["seeds"], "sign flips (mean over seeds)": f["flips"].map(lambda v: f"{v:,.0f}")}))


def page(out: Path, grids: list[str] | None = None) -> str:
    df = benchmark.results(str(out))
    if grids:   # the runs of grids/NAME.toml as it is now (a run shared with another grid counts for both;
        # runs of an earlier version of the grid drop out), else those recorded under that grid name
        from benchmark.grid import load_grid

        files = [GRIDS / f"{g}.toml" for g in grids if (GRIDS / f"{g}.toml").is_file()]
        ids = {s.run_id for f in files for s in load_grid(f).specs}
        named = [g for g in grids if not (GRIDS / f"{g}.toml").is_file()]
        df = df[df["run_id"].isin(ids) | df["grid"].isin(named)]
    status = df["status"].value_counts().to_dict()
    gains = paired_gains(df)
    context = {"n_runs": len(df), "status": ", ".join(f"{n} {s}" for s, n in sorted(status.items())),
               "cpu_min": f"{df['total_time_s'].sum() / 60:.0f}", "table": md(display_frame(aggregate(df))[TABLE_COLUMNS]),
               "gains": format_table(gains, "md", gains=True) if len(gains) else "", "anytime": "",
               "flips": sign_flips(df)}
    at = anytime(df)
    steps = [c for c in at.columns if c.startswith("top1@")]
    if len(steps) > 1:
        show = at.assign(**{"target (%)": (100 * at["target_sparsity"]).map(lambda v: f"{v:g}")})
        for c in steps:
            show[c] = show[c].map(lambda v: "—" if pd.isna(v) else f"{v:.2f}")
        show = show.rename(columns={c: f"top-1 after {c[5:]} steps" if c != "top1@end" else "top-1 at the end"
                                    for c in steps})
        context["anytime"] = md(show[["task", "target (%)", "method", "seeds"]
                                     + [c for c in show.columns if c.startswith("top-1")]])
    return markdown_env().get_template("results.md").render(**context).rstrip("\n") + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="results folder (sparsebench run --out)")
    ap.add_argument("--grid", action="append", help="only the runs of grids/NAME.toml, or of runs recorded "
                    "under that grid name (repeatable)")
    a = ap.parse_args()
    print(page(a.out, a.grid))
