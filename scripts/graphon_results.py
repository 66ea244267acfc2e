"""Reproduce the graphon results of docs/results-graphon.md (CPU; sized for a shared 2-core machine).

    python scripts/graphon_results.py [--part sweep|erk|ntk|runs|synflow-check|all] [--out results/graphon]

Parts (Pham et al., *The Graphon Limit Hypothesis*, NeurIPS 2025; PAPERS.md §8):

* ``sweep``  — the convergence figure: Random, Magnitude, SNIP, GraSP, SynFlow at 80 % sparsity (global
  allocation), 4- and 5-layer MLPs (3 and 4 hidden layers, i.e. 2 and 3 hidden→hidden masks) on
  Fashion-MNIST, widths 100 → 2000, K = 64, distance of each width's trial-averaged estimate to width 2000.
* ``erk``    — the same for ERK-allocated masks (beyond the paper), 5-layer MLP.
* ``ntk``    — Graphon NTK spectra against sparsity (50–95 %) for Random, SNIP, SynFlow, next to the
  training loss of the first 200 Adam steps (lr 1e-3) of the same masked networks.
* ``runs``   — ``grids/graphon-runs.toml`` (Fashion-MNIST LeNet-300-100 at 80 %, converged recipe, 3 seeds,
  ``analysis = {graphon = true}``): IMP / LRR tickets and RigL masks (beyond the paper) next to the
  at-init methods.
* ``synflow-check`` — the cost reduction check: SynFlow with the reduced number of iterations against
  the paper's 100 at width 200.

Reduced settings (CPU budget, stated in the results page): ``TRIALS`` networks per width (paper: 100),
SynFlow with ``SYNFLOW_ITERATIONS`` rounds (paper: 100), the NTK/training experiment at width ``NTK_WIDTH``
(paper: 1024) with one network per setting (paper: 3 runs).  Every number is recomputed by this script;
the raw outputs go to ``--out`` (ignored by git), the figures and tables to ``docs/figures/graphon/``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)  # the shared machine is oversubscribed: 2 threads per process made steps 20x slower

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.analysis import PrunerSpec, ntk_markdown, run_ntk, sweep_markdown  # noqa: E402

TASK = "fmnist-lenet300"          # its dataset (Fashion-MNIST, d = 784) feeds the MLPs
SPARSITY = 0.8
WIDTHS = [100, 500, 1000, 2000]
DEPTHS = [3, 4]                   # hidden layers: 4- and 5-layer MLPs (counting Linear layers)
K = 64
TRIALS = 1
SYNFLOW_ITERATIONS = 5
RUNS_GRID = ROOT / "grids" / "graphon-runs.toml"   # part "runs": trained masks, converged recipe, 3 seeds,
RUNS_OUT = ROOT / "results" / "graphon-runs"       # in a results folder of its own (make archive-results)
NTK_WIDTH = 256
NTK_SPARSITIES = [0.5, 0.8, 0.9, 0.95]
FIG = ROOT / "docs" / "figures" / "graphon"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def publish(src: Path, name: str) -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, FIG / name)


def _cached_sweep(o: Path, spec: PrunerSpec, depth: int, trials: int) -> tuple[pd.DataFrame, dict]:
    """One pruner's sweep, cached in ``o`` (CSV + the widest width's averaged estimates), so that an
    interrupted run resumes where it stopped."""
    csv, npz = o / "sweep.csv", o / "widest.npz"
    if csv.exists() and npz.exists():
        log(f"cached {o}")
        return pd.read_csv(csv), dict(np.load(npz))
    from benchmark.analysis import pruner_mask_fn, task_data
    from graphon.sweep import convergence_sweep

    fn = pruner_mask_fn(task_data(TASK), spec, SPARSITY, depth)
    t0 = time.perf_counter()
    df, est = convergence_sweep(fn, WIDTHS, trials, K, return_estimates=True)
    df.insert(0, "sparsity", SPARSITY)
    df.insert(0, "depth", depth)
    df.insert(0, "pruner", spec.label)
    df["seconds"] = time.perf_counter() - t0
    widest = {layer: m for (w, layer), m in est.items() if w == WIDTHS[-1]}
    o.mkdir(parents=True, exist_ok=True)
    np.savez(npz, **widest)
    df.to_csv(csv, index=False)
    log(f"{spec.label} depth {depth}: {df['seconds'].iloc[0]:.0f}s")
    return df, widest


def _sweep_parts(out: Path, name: str, pruners: list[PrunerSpec], depths: list[int], trials: int) -> pd.DataFrame:
    from graphon.plots import plot_convergence_panels, plot_graphon_grid

    frames = []
    for depth in depths:
        widest = {}
        for spec in pruners:
            df, w = _cached_sweep(out / name / f"depth{depth}-{spec.label}", spec, depth, trials)
            frames.append(df)
            widest[spec.label] = w
        sub = pd.concat(frames[-len(pruners):], ignore_index=True)
        plot_convergence_panels(sub, FIG / f"{name}-convergence-depth{depth}.png",
                                title=f"Fashion-MNIST MLP, {depth + 1} layers ({depth} hidden), 80 % sparsity, "
                                      f"K={K}, {trials} trial(s)")
        plot_graphon_grid(widest, FIG / f"{name}-graphons-depth{depth}.png",
                          title=f"width {WIDTHS[-1]}, {depth + 1}-layer MLP, hidden->hidden masks, 80 %")
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(FIG / f"{name}.csv", index=False)
    (FIG / f"{name}.md").write_text(sweep_markdown(df) + "\n", encoding="utf-8")
    log("\n" + sweep_markdown(df))
    return df


def part_sweep(out: Path) -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    pruners = [PrunerSpec("random"), PrunerSpec("magnitude"), PrunerSpec("snip"), PrunerSpec("grasp"),
               PrunerSpec("synflow", pruner_args={"iterations": SYNFLOW_ITERATIONS})]
    _sweep_parts(out, "sweep", pruners, DEPTHS, TRIALS)


def part_erk(out: Path) -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    pruners = [PrunerSpec("random", "erk"), PrunerSpec("magnitude", "erk"), PrunerSpec("snip", "erk")]
    _sweep_parts(out, "sweep-erk", pruners, [4], 1)


def part_ntk(out: Path) -> None:
    pruners = [PrunerSpec("random"), PrunerSpec("snip"),
               PrunerSpec("synflow", pruner_args={"iterations": SYNFLOW_ITERATIONS})]
    o = out / "ntk"
    df = run_ntk(TASK, pruners, NTK_SPARSITIES, width=NTK_WIDTH, depth=4, K=K, samples=256, trials=1,
                 train_steps=200, lr=1e-3, out=o, progress=log)
    for f in ("spectra.png", "ntk_metrics.png", "loss.png"):
        publish(o / f, f"ntk-{f}")
    df.to_csv(FIG / "ntk.csv", index=False)
    (FIG / "ntk.md").write_text(ntk_markdown(df) + "\n", encoding="utf-8")
    log("\n" + ntk_markdown(df))


def part_runs(out: Path) -> None:
    """§3: the finished runs of ``grids/graphon-runs.toml`` (the converged recipe, 3 seeds), run first
    through the CLI's local executor, which skips finished runs and resumes interrupted ones."""
    import subprocess

    from tabulate import tabulate

    from benchmark.grid import load_grid
    from benchmark.runfolder import read_result, run_dir
    from benchmark.stats import t_interval

    runs_out = RUNS_OUT
    subprocess.run([sys.executable, "-m", "benchmark", "run", str(RUNS_GRID), "--out", str(runs_out),
                    "--workers", "2", "--no-progress"], check=True, cwd=ROOT)
    rows, grid = [], {}
    for spec in load_grid(RUNS_GRID).specs:
        name, seed = spec.pruner, spec.seed
        rec = read_result(run_dir(runs_out, spec.run_id)) or {"status": "missing", "reason": ""}
        log(f"run {name} seed {seed}: {rec['status']} {rec.get('reason', '')}")
        if rec["status"] != "ok":
            continue
        g = rec["graphon"]
        lay = g["layers"]
        names = list(lay)
        rows.append({"pruner": name, "seed": seed, "epochs": rec["epochs"], "top1": rec["final_top1"],
                     "sparsity": rec["achieved_sparsity"],
                     **{f"density {n.split('.')[1]}": lay[n]["density"] for n in names},
                     "het. input": lay[names[0]]["heterogeneity"], "het. 300→100": lay[names[1]]["heterogeneity"],
                     "dead share 300→100": lay[names[1]]["dead_share"],
                     "dead neurons": g.get("graphon_dead_neuron_share"),
                     "NTK top-5": g.get("ntk_top5_energy"), "NTK eff. rank": g.get("ntk_effective_rank"),
                     "NTK α": g.get("ntk_decay_rate")})
        if seed == 0:
            grid[name] = {n: np.asarray(lay[n]["matrix"]) for n in names if "matrix" in lay[n]}
    per_run = pd.DataFrame(rows)
    per_run.to_csv(FIG / "runs.csv", index=False)
    by = per_run.drop(columns="seed").groupby("pruner", sort=False)
    df = by.mean(numeric_only=True)
    df["top1"] = by["top1"].agg(lambda v: t_interval(v).text())   # mean ± sample std [95 % t-interval]
    df = df.rename(columns={"top1": "top-1 (%), mean ± std [95 % CI]"})
    df.insert(0, "seeds", by.size())
    df = df.reset_index()
    md = tabulate(df.values.tolist(), headers=list(df.columns), tablefmt="github", floatfmt=".4g")
    (FIG / "runs.md").write_text(md + "\n", encoding="utf-8")
    from graphon.plots import plot_graphon_grid

    if grid:
        plot_graphon_grid(grid, FIG / "runs-graphons.png", title=f"{TASK} at 80 %: step graphons (K ≤ 64)")
    log("\n" + md)


def part_synflow_check(out: Path) -> None:
    """SynFlow with SYNFLOW_ITERATIONS rounds vs the paper's 100 at width 200 (5-layer MLP, TRIALS trials)."""
    from benchmark.analysis import pruner_mask_fn, task_data
    from graphon.distance import frobenius
    from graphon.estimate import estimate

    td = task_data(TASK)
    width = 200
    fns = {e: pruner_mask_fn(td, PrunerSpec("synflow", pruner_args={"iterations": e}), SPARSITY, 4)
           for e in (SYNFLOW_ITERATIONS, 100)}
    avg: dict[int, dict[str, np.ndarray]] = {}
    dead: dict[int, float] = {}
    for e, fn in fns.items():
        for t in range(TRIALS):
            masks = fn(width, t)
            for n, m in masks.items():
                est = estimate(m, K)
                avg.setdefault(e, {})[n] = avg.get(e, {}).get(n, 0) + est.matrix / TRIALS
                dead[e] = dead.get(e, 0.0) + est.dead_share / (TRIALS * len(masks))
        log(f"synflow E={e} done")
    res = {"width": width, "trials": TRIALS,
           "distance_per_layer": {n: frobenius(avg[SYNFLOW_ITERATIONS][n], avg[100][n]) for n in avg[100]},
           "heterogeneity": {str(e): float(np.mean([a.std() for a in avg[e].values()])) for e in avg},
           "dead_share": {str(e): dead[e] for e in dead}}
    (FIG / "synflow-check.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    log(json.dumps(res, indent=1))


def part_approximations(out: Path) -> None:
    """The graphon NTK's two approximations on LeNet-300-100 masks (784-300-100-10), 256 training samples:
    input cells (min(K, d) cells of adjacent pixels) against the paper's per-pixel input graphon, and
    uneven cells (K = 64 does not divide 300 or 100; cells of ⌊n/K⌋ or ⌈n/K⌉ neurons get equal measure)
    against partitions that divide both widths (K = 50, K = 100), 3 seeds each."""
    from benchmark.analysis import fixed_batch, prune_context, prune_model, task_data
    from benchmark.stats import t_interval
    from benchmark.tasks import TASKS, build_model
    from graphon.ntk import masks_ntk
    from graphon.spectrum import spectrum_metrics

    td = task_data(TASK)
    x = fixed_batch(td.data, 256, split="train")
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    rows = []
    for spec in (PrunerSpec("random"), PrunerSpec("snip"),
                 PrunerSpec("synflow", pruner_args={"iterations": SYNFLOW_ITERATIONS})):
        for sparsity in (0.8, 0.95):
            for seed in range(3):
                torch.manual_seed(seed)
                masks = prune_model(build_model(TASKS.get(TASK)), spec, sparsity, prune_context(td, seed))
                th = {(k, pp): masks_ntk(masks, x, k, per_pixel_input=pp)
                      for k, pp in ((64, False), (64, True), (50, True), (100, True))}
                top5 = {key: spectrum_metrics(t).top5_energy for key, t in th.items()}
                rows.append({"pruner": spec.label, "sparsity": sparsity, "seed": seed,
                             "cells_vs_pixels": rel(th[64, False], th[64, True]),
                             "top5_cells_minus_pixels": top5[64, False] - top5[64, True],
                             "K64_vs_K100": rel(th[64, True], th[100, True]),
                             "K50_vs_K100": rel(th[50, True], th[100, True]),
                             "top5_K64_minus_K100": top5[64, True] - top5[100, True]})
            log(f"approximations {spec.label} {sparsity:g} done")
    df = pd.DataFrame(rows)
    df.to_csv(FIG / "ntk-approximations.csv", index=False)
    cols = ["cells_vs_pixels", "top5_cells_minus_pixels", "K64_vs_K100", "K50_vs_K100", "top5_K64_minus_K100"]
    lines = ["| pruner | sparsity | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for (p, sp), g in df.groupby(["pruner", "sparsity"], sort=False):
        cells = []
        for c in cols:
            e = t_interval(g[c])
            cells.append(f"{e.mean:.2e} [{e.lo:.1e}, {e.hi:.1e}]")
        lines.append(f"| {p} | {sp:g} | " + " | ".join(cells) + " |")
    (FIG / "ntk-approximations.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log("\n" + "\n".join(lines))


PARTS = {"sweep": part_sweep, "erk": part_erk, "ntk": part_ntk, "runs": part_runs, "synflow-check": part_synflow_check,
         "approximations": part_approximations}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=[*PARTS, "all"])
    ap.add_argument("--out", default=str(ROOT / "results" / "graphon"))
    args = ap.parse_args()
    out = Path(args.out)
    for name, fn in PARTS.items():
        if args.part in (name, "all"):
            t0 = time.perf_counter()
            fn(out)
            log(f"part {name}: {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
