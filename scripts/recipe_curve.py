"""Learning curves of a task's recipe from a results folder: per-epoch test top-1 of the plain dense runs
(mean over seeds, from each run folder's metrics.jsonl), the convergence check of docs/tasks.md
(:func:`benchmark.stats.plateau`: the last 20 % of epochs move test top-1 by < 0.3 points) and the cost
(mean training seconds per epoch).

    python scripts/recipe_curve.py results/signin-ham [--grid signin-ham-table]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import benchmark
from benchmark.runfolder import read_metrics, run_dir
from benchmark.stats import plateau
from leaderboard.table import add_method


def curves(out: Path, grids: list[str] | None = None) -> str:
    df = add_method(benchmark.results(str(out)))
    df = df[(df["pruner"] == "dense") & (df["reparam"].isna() | (df["reparam"] == "none")) & (df["status"] == "ok")]
    if grids:
        df = df[df["grid"].isin(grids)]
    lines = []
    for task, sub in df.groupby("task"):
        epochs = []
        for run_id in sub["run_id"]:
            epochs += [m | {"run_id": run_id} for m in read_metrics(run_dir(out, run_id)) or []]
        e = pd.DataFrame(epochs)
        mean = e.groupby("epoch")["test_top1"].mean()
        per_seed = [plateau(g.sort_values("epoch")["test_top1"]) for _, g in e.groupby("run_id")]
        lines += [f"### {task} (dense, {len(sub)} seeds)", "",
                  "| epoch | " + " | ".join(str(int(k)) for k in mean.index) + " |",
                  "|---|" + "---|" * len(mean),
                  "| test top-1 (%) | " + " | ".join(f"{v:.2f}" for v in mean) + " |", "",
                  f"Last 20 % of epochs move test top-1 by {plateau(mean):.2f} points (mean curve; per seed "
                  + ", ".join(f"{p:.2f}" for p in per_seed) + f"): {'plateaued' if plateau(mean) < 0.3 else 'NOT plateaued'} "
                  f"(criterion < 0.3).  Training: {e['epoch_train_time_s'].mean():.1f} s per epoch per worker "
                  f"({sub['total_time_s'].mean():.0f} s per run with evaluation).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--grid", action="append")
    a = ap.parse_args()
    print(curves(a.out, a.grid))
