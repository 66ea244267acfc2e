"""Per-layer gradient norms at initialisation of a grid's plain runs (no reparameterisation): the
trainability check behind the diagnosis of sparse LeNet-5 at chance level (docs/results-reparam.md).

    python scripts/init_gradients.py grids/signin-ham-lenet5.toml [--pruner dense --pruner random]

Each run is built exactly as the runner builds it (:func:`benchmark.runner.build`: seed, data, model,
initial masks); one training batch is passed forward and backward, and the Frobenius norm of each weight
matrix's gradient is printed, mean over seeds, beside its ratio to the dense run's.  A layer whose gradient
is orders of magnitude below dense cannot move the network off its input-independent start (loss ln 10).
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from tabulate import tabulate

from benchmark.grid import load_grid
from benchmark.runner import build


def gradient_norms(grid: str, pruners: list[str]) -> pd.DataFrame:
    rows = []
    for spec in load_grid(grid).specs:
        if spec.pruner not in pruners or spec.reparam not in (None, "none"):
            continue
        b = build(spec, torch.device("cpu"), {"versions": {}}, lambda *a, **k: None)
        model = b.session.model
        x, y = next(iter(b.train_loader))
        model.zero_grad()
        b.loss_fn(model(x), y).backward()
        rows += [{"pruner": spec.pruner, "sparsity (%)": f"{100 * spec.sparsity:g}", "seed": spec.seed, "layer": n,
                  "grad norm": float(p.grad.norm())} for n, p in model.named_parameters() if p.dim() > 1]
    df = pd.DataFrame(rows).groupby(["pruner", "sparsity (%)", "layer"], sort=False)["grad norm"].mean().unstack("layer")
    dense = df.xs("dense", level="pruner").iloc[0] if "dense" in df.index.get_level_values("pruner") else None
    return df if dense is None else pd.concat({"grad norm": df, "÷ dense": df / dense}, axis=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--pruner", action="append", help="pruners to include (default: dense and random)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    df = gradient_norms(a.grid, a.pruner or ["dense", "random"])
    print(tabulate(df.reset_index().values.tolist(), headers=["pruner", "sparsity (%)", *(f"{k}: {v}" for k, v in df.columns)],
                   tablefmt="github", floatfmt=".2g"))
