"""The aggregated results table: mean ± std over seeds per method and sparsity.

Reads only the results DataFrame (``benchmark.results()``), never the store or run folders.
A *method* is a pruner with its allocation, hyperparameters and reparam; rows with the same method,
task, optimiser and target sparsity are aggregated over seeds.  The std is the sample standard
deviation (ddof = 1); with a single seed it is reported as 0 and ``seeds`` says 1.
"""
from __future__ import annotations

import json

import pandas as pd

GROUP = ["task", "method", "optimizer", "target_sparsity"]


def method_label(row: pd.Series) -> str:
    """``pruner[/allocation][ key=value…][+reparam]`` — what distinguishes runs besides seeds."""
    label = str(row["pruner"])
    if row.get("pruner_family") != "dense" and row["pruner"] != "dense":
        label += f"/{row['allocation']}"
    if row.get("reparam") not in (None, "none"):
        label += f"+{row['reparam']}"
    return label


def add_method(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if df.empty:
        df["method"] = pd.Series(dtype=str)
        return df
    df["method"] = df.apply(method_label, axis=1)
    # the same label with different hyperparameters must not be averaged together
    args = df["pruner_args"].map(lambda a: json.dumps(a, sort_keys=True)) + "|" + \
        df["reparam_args"].map(lambda a: json.dumps(a, sort_keys=True)) + "|" + \
        df["allocation_args"].map(lambda a: json.dumps(a, sort_keys=True))
    for label, sub in df.groupby("method"):
        variants = sorted(args[sub.index].unique())
        if len(variants) > 1:
            for i, v in enumerate(variants):
                df.loc[sub.index[args[sub.index] == v], "method"] = f"{label}#{i + 1}"
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, optimizer, target sparsity) over the runs with status ok."""
    cols = GROUP + ["seeds", "top1_mean", "top1_std", "loss_mean", "achieved_sparsity", "collapsed",
                    "diverged", "failed", "train_flops_rel"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = add_method(df)
    rows = []
    for key, sub in df.groupby(GROUP, sort=True, dropna=False):
        ok = sub[sub["status"] == "ok"]
        top1 = ok["final_top1"].dropna().astype(float)
        rows.append(dict(zip(GROUP, key), seeds=len(ok),
                         top1_mean=top1.mean() if len(top1) else float("nan"),
                         top1_std=top1.std(ddof=1) if len(top1) > 1 else 0.0,
                         loss_mean=ok["final_test_loss"].astype(float).mean() if len(ok) else float("nan"),
                         achieved_sparsity=ok["achieved_sparsity"].astype(float).mean() if len(ok) else float("nan"),
                         collapsed=int(ok["collapse"].fillna(0).astype(int).sum()),
                         diverged=int((sub["status"] == "diverged").sum()),
                         failed=int((sub["status"] == "failed").sum()),
                         train_flops_rel=ok["train_flops_rel"].astype(float).mean() if len(ok) else float("nan")))
    return pd.DataFrame(rows, columns=cols)


def display_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """Human-readable columns: 'top-1 (%)' as mean ± std, sparsities in percent."""
    out = pd.DataFrame({
        "task": agg["task"],
        "method": agg["method"],
        "target (%)": (100 * agg["target_sparsity"]).map(lambda v: f"{v:g}"),
        "achieved (%)": (100 * agg["achieved_sparsity"]).map(lambda v: "—" if pd.isna(v) else f"{v:.2f}"),
        "top-1 (%)": [("—" if pd.isna(m) else f"{m:.2f} ± {s:.2f}") for m, s in zip(agg["top1_mean"], agg["top1_std"])],
        "seeds": agg["seeds"],
        "train FLOPs": agg["train_flops_rel"].map(lambda v: "—" if pd.isna(v) else f"{v:.3f}"),
        "collapsed": agg["collapsed"],
        "diverged/failed": [f"{d}/{f}" for d, f in zip(agg["diverged"], agg["failed"])],
    })
    return out


def format_table(agg: pd.DataFrame, fmt: str = "plain") -> str:
    """Render with tabulate (plain, md, latex) or as CSV."""
    disp = display_frame(agg)
    if fmt == "csv":
        return agg.to_csv(index=False)
    from tabulate import tabulate

    tablefmt = {"plain": "simple", "md": "github", "latex": "latex_booktabs"}[fmt]
    return tabulate(disp.values.tolist(), headers=list(disp.columns), tablefmt=tablefmt,
                    disable_numparse=True)
