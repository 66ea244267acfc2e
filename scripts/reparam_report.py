"""Markdown tables for docs/results-reparam.md from a grid output folder (grids/reparam-fmnist.toml).

Per task and method (pruner + reparam), at each target sparsity: final top-1 (mean ± std over seeds),
sign flips of kept weights against initialisation (mean over seeds; ``sign_flips`` of the result
record, counted by the runner from the reparam's effective weights), and the number of finished
seeds.  Then the published ImageNet ResNet-50 numbers of PAPERS.md §2–4 beside them.

    python scripts/reparam_report.py results/reparam
"""
from __future__ import annotations

import sys

import pandas as pd

from benchmark.store import results

METHODS = [  # (pruner, reparam, label) in display order; the grid's off-diagonal pairs follow
    ("random", "none", "random PaI (ERK)"),
    ("random", "signin", "random + Sign-In"),
    ("random", "ham", "random + HAM"),
    ("oneshot", "pilot", "PILoT (one-shot global magnitude)"),
    ("oneshot", "spred", "spred (one-shot global magnitude)"),
    ("oneshot", "none", "dense → one-shot magnitude"),
    ("oneshot", "ham", "HAM → one-shot magnitude"),
    ("oneshot", "signin", "Sign-In (dense) → one-shot magnitude"),
    ("random", "pilot", "random + PILoT"),
    ("random", "spred", "random + spred"),
]

PUBLISHED = """\
Published ImageNet ResNet-50 top-1 (%) at 80 / 90 / 95 % sparsity (PAPERS.md §2–4; 100 epochs, GPU):

| method | 80 % | 90 % | 95 % |
|---|---|---|---|
| random | 73.87 | 71.56 | 68.72 |
| random + Sign-In | 74.12 | 72.19 | 69.38 |
| random + HAM | 74.84 | 72.72 | 70.05 |
| AC/DC | 75.83 | 74.75 | 72.59 |
| AC/DC + Sign-In | 75.90 | 74.74 | 72.88 |
| AC/DC + HAM | 77.20 | 76.66 | 75.45 |
| RigL | 75.02 | 73.70 | 71.89 |
| RigL + Sign-In | 75.02 | 74.27 | 73.07 |
| RigL + HAM | 76.22 | 74.83 | 72.93 |
| STR | 75.49 | 72.40 | 64.94 |
| STR + HAM | 76.37 | 75.01 | 71.41 |
| PILoT | 75.62 | 74.73 | 71.30 |
| spred | 72.64 | 71.84 | 69.47 |
"""


def table(df: pd.DataFrame, task: str) -> str:
    d = df[(df["task"] == task) & (df["status"] == "ok")]
    sps = sorted(d["target_sparsity"].unique())
    head = "| method | " + " | ".join(f"{s:.0%} top-1 | flips" for s in sps) + " |"
    sep = "|---|" + "---|---|" * len(sps)
    lines = [head, sep]
    for pruner, reparam, label in METHODS:
        cells = []
        for s in sps:
            g = d[(d["pruner"] == pruner) & (d["reparam"] == reparam) & (d["target_sparsity"] == s)]
            if g.empty:
                cells += ["–", "–"]
                continue
            acc = g["final_top1"]
            std = acc.std(ddof=1) if len(acc) > 1 else 0.0
            cells += [f"{acc.mean():.2f} ± {std:.2f} (n={len(acc)})", f"{g['sign_flips'].mean():.0f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else "results/reparam"
    df = results(out)
    for task in sorted(df["task"].unique()):
        print(f"### {task}\n")
        print(table(df, task))
        print()
    failed = df[df["status"] != "ok"]
    if len(failed):
        print(f"{len(failed)} run(s) not ok: " + ", ".join(f"{r.pruner}+{r.reparam}@{r.target_sparsity}: {r.status}"
                                                     for r in failed.itertuples()))
        print()
    print(PUBLISHED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
