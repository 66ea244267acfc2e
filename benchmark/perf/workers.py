"""Quick grid with 2 workers vs 1 worker (wall time; target speed-up ≥ 1.7×).

``sparsebench run GRID --out TMP --workers N`` for N = 1 and 2, each into a fresh temporary folder (so
no run is skipped), one after the other; the figure is wall(1 worker) / wall(2 workers).  The local
executor is a spawn process pool that splits the torch threads between its workers.  ``--quick`` runs a
small grid (digits-mlp, dense and random at 90 %, one seed) instead of grids/quick.toml.
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


def run_grid(grid: Path, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix=f"perf-w{workers}-") as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmark.cli", "run", str(grid), "--out", out,
                        "--workers", str(workers)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
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
        load1 = load_average()
    name = "a small grid (digits-mlp, 4 runs)" if quick else "`grids/quick.toml`"
    speed = t1 / t2
    lines = ["## Grid: 2 workers vs 1 worker", "",
             f"{name} run from scratch into temporary folders with `sparsebench run --workers 1` and then "
             f"`--workers 2` (wall time of the whole command, process start and data loading included). "
             f"Load average {load0:.1f} before, {load1:.1f} after.", "",
             "| workers | wall time (s) |", "|---|---|",
             f"| 1 | {t1:.1f} |", f"| 2 | {t2:.1f} |", "",
             f"Speed-up: **{speed:.2f}×** (target ≥ 1.7×: {'meets' if speed >= 1.7 else 'misses'}"
             f"{'' if load0 < 2.5 else '; the other jobs on the machine took cores the second worker needed'}).",
             ""]
    return "\n".join(lines)
