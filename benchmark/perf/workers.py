"""Quick grid with 2 workers vs 1 worker (wall time; target speed-up ≥ 1.8×), and the standard grid's runs
per hour with 2 workers.

``sparsebench run GRID --out TMP --workers N`` for N = 1 and 2, each into a fresh temporary folder (so
no run is skipped), one after the other; the figure is wall(1 worker) / wall(2 workers).  Every run uses
one torch thread whatever the number of workers (the local executor's default, so that results do not
depend on ``--workers``; ``benchmark.executors.local``), so the figure measures the parallelism over runs.
The other way to use two cores, one worker whose runs use two threads (``SPARSEBENCH_THREADS=2``), is
timed as a third command and reported beside.  ``--quick`` runs a small grid (digits-mlp, dense and
random at 90 %, two seeds) instead of grids/quick.toml, and skips the standard grid.

Runs per hour: ``grids/standard.toml`` (the grid every ``sparsebench submit`` runs) from scratch with
``--workers 2``: its number of runs × 3600 / wall time, what a researcher submitting a pruner waits for.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark.perf.timing import load_average

ROOT = Path(__file__).resolve().parents[2]
SMALL_GRID = """name = "perf-small"
tasks = ["digits-mlp"]
sparsities = [0.9]
seeds = [0, 1]
[task_recipe.digits-mlp]
epochs = 3
[[pruners]]
name = "dense"
[[pruners]]
name = "random"
allocation = "uniform"
"""


def run_grid(grid: Path, workers: int, threads: int | None = None, again: bool = False) -> float:
    """Wall time of ``sparsebench run GRID --workers N`` into a fresh folder (``threads``: torch threads
    per run through $SPARSEBENCH_THREADS; None = the executor's default, one).  ``again``: return instead
    the wall time of the same command once more into that finished folder (every run skipped): the
    serial part — interpreter, imports, loading the datasets, worker start-up — without the runs."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("SPARSEBENCH_THREADS", None)
    if threads is not None:
        env["SPARSEBENCH_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "benchmark.cli", "run", str(grid), "--workers", str(workers), "--no-progress"]
    with tempfile.TemporaryDirectory(prefix=f"perf-w{workers}-") as out:
        for _ in range(2 if again else 1):
            t0 = time.perf_counter()
            subprocess.run(cmd + ["--out", out], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env)
        return time.perf_counter() - t0


def section(quick: bool = False) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        if quick:
            grid = Path(tmp) / "small.toml"
            grid.write_text(SMALL_GRID, encoding="utf-8")
        else:
            grid = ROOT / "grids" / "quick.toml"
        load0 = load_average()
        t1 = run_grid(grid, 1)
        t2 = run_grid(grid, 2)
        t1x2 = run_grid(grid, 1, threads=2)
        serial1, serial2 = run_grid(grid, 1, again=True), run_grid(grid, 2, again=True)
        standard = ROOT / "grids" / "standard.toml"
        t_std = None if quick else run_grid(standard, 2)
        load1 = load_average()
    name = "a small grid (digits-mlp, 4 runs)" if quick else "`grids/quick.toml`"
    speed = t1 / t2
    lines = ["## Grid: 2 workers vs 1 worker", "",
             f"{name} run from scratch into temporary folders with `sparsebench run --workers 1`, then "
             f"`--workers 2`, then `--workers 1` with `SPARSEBENCH_THREADS=2` (wall time of the whole command, "
             f"process start and data loading included). Every run uses one torch thread unless "
             f"`SPARSEBENCH_THREADS` says otherwise, whatever `--workers` is, so a run's result does not depend "
             f"on the number of workers (docs/scaling.md, \"Threads\"). Load average {load0:.1f} before, "
             f"{load1:.1f} after.", "",
             "| workers | torch threads per run | wall time (s) |", "|---|---|---|",
             f"| 1 | 1 | {t1:.1f} |", f"| 2 | 1 | {t2:.1f} |", f"| 1 | 2 (`SPARSEBENCH_THREADS=2`) | {t1x2:.1f} |", "",
             f"Speed-up of 2 workers over 1: **{speed:.2f}×** (target ≥ 1.8×: {'meets' if speed >= 1.8 else 'misses'}"
             f"{'' if load0 < 2.5 else '; the other jobs on the machine took cores the second worker needed'}). "
             f"Over one worker with two threads per run, the other way to use both cores: {t1x2 / t2:.2f}×.",
             ""]
    runs1, runs2 = t1 - serial1, t2 - serial2
    lines += [f"Breakdown: the same commands again into their finished folders (every run skipped) take {serial1:.1f} s "
              f"(1 worker) and {serial2:.1f} s (2 workers: the pool's start-up too) — interpreter, imports, loading the "
              f"datasets — which each command pays once; the runs themselves took {runs1:.1f} s with 1 worker and "
              f"{runs2:.1f} s with 2, a speed-up of {runs1 / runs2:.2f}× on the part that can run in parallel (with n "
              "runs of unequal length the last one runs alone).", ""]
    if t_std is not None:
        from benchmark.grid import load_grid

        n = len(load_grid(standard).specs)
        lines += [f"Standard grid (`grids/standard.toml`, what `sparsebench submit` runs: {n} runs) from scratch with "
                  f"`--workers 2`: {t_std:.1f} s wall, **{3600 * n / t_std:.0f} runs per hour** on this machine.", ""]
    return "\n".join(lines)
