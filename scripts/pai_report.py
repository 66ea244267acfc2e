"""PaI report: the Markdown tables of docs/results-pai.md from a results folder of grids/pai-fmnist.toml.

Usage:  python scripts/pai_report.py results/pai > /tmp/pai.md

Per task × method (pruner / allocation) × target sparsity, over seeds: final top-1 mean ± std,
achieved sparsity, layer collapse (runs with an empty layer), effective sparsity and dead units
(``pruners.connectivity.connectivity`` on each run's saved masks and the task's architecture — it
depends only on the masks, so it is recomputed here from the run folder), and the mask-computation
cost (seconds and forward-backward units, as recorded by the runner).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

import benchmark
from benchmark.runfolder import run_dir
from benchmark.tasks import get_task
from benchmark.tasks.base import build_model
from benchmark.tasks.datasets import dataset_info
from pruners import Masks
from pruners.connectivity import connectivity


def with_connectivity(df: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Add effective_sparsity / dead_neurons columns computed from each run's masks.pt."""
    models: dict[str, tuple[torch.nn.Module, tuple[int, ...]]] = {}
    eff, dead = [], []
    for _, row in df.iterrows():
        if row["task"] not in models:
            task = get_task(row["task"])
            info = dataset_info(task.dataset, **dict(task.dataset_args))
            torch.manual_seed(0)
            models[row["task"]] = (build_model(task), tuple(info.input_shape))
        model, shape = models[row["task"]]
        path = run_dir(out, row["run_id"]) / "masks.pt"
        if not path.is_file():
            eff.append(None)
            dead.append(None)
            continue
        c = connectivity(model, Masks.load(path), shape)
        eff.append(c["effective_sparsity"])
        dead.append(c["dead_neurons"])
    return df.assign(effective_sparsity=eff, dead_neurons=dead)


def pm(mean: float, std: float, digits: int = 2) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.{digits}f} ± {0.0 if pd.isna(std) else std:.{digits}f}"


def report(out: Path) -> str:
    df = benchmark.results(str(out))
    df = df[df["status"] == "ok"].copy()
    df = with_connectivity(df, out)
    df["method"] = df["pruner"] + "/" + df["allocation"]
    lines = []
    for task, tdf in df.groupby("task", sort=True):
        dense = tdf[tdf["pruner"] == "dense"]["final_top1"]
        lines.append(f"### {task}\n")
        if len(dense):
            lines.append(f"Dense (same reduced recipe): **{dense.mean():.2f} ± {dense.std(ddof=1):.2f}** % "
                         f"({len(dense)} seeds).\n")
        sp = tdf[tdf["pruner"] != "dense"]
        g = sp.groupby(["target_sparsity", "method"], sort=True)
        rows = []
        for (target, method), r in g:
            rows.append({
                "sparsity (%)": f"{100 * target:g}",
                "method": method,
                "top-1 (%)": pm(r["final_top1"].mean(), r["final_top1"].std(ddof=1)),
                "achieved (%)": f"{100 * r['achieved_sparsity'].mean():.3f}",
                "effective (%)": f"{100 * r['effective_sparsity'].mean():.2f}",
                "dead units": f"{r['dead_neurons'].mean():.1f}",
                "collapsed runs": f"{int(r['collapse'].astype(bool).sum())}/{len(r)}",
                "mask time (s)": f"{r['mask_time_s'].mean():.3f}",
                "mask cost (fwd-bwd)": f"{r['mask_time_fb'].mean():.1f}",
                "seeds": str(len(r)),
            })
        table = pd.DataFrame(rows)
        lines.append(table.to_markdown(index=False))
        lines.append("")
        # ordering per sparsity (by mean top-1)
        lines.append(f"Ordering by mean top-1 ({task}):\n")
        for target, r in sp.groupby("target_sparsity", sort=True):
            means = r.groupby("method")["final_top1"].mean().sort_values(ascending=False)
            lines.append(f"- {100 * target:g} %: " + " > ".join(f"{m} ({v:.1f})" for m, v in means.items()))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1] if len(sys.argv) > 1 else "results/pai")))
