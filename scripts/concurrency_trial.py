"""Several drivers on one output folder: count runs, rows, duplicate executions, failures, malformed metrics.

    python scripts/concurrency_trial.py [--drivers 4] [--workers 2] [--overlapping]

Starts ``--drivers`` ``sparsebench run`` processes at once on a 24-run ``digits-mlp`` grid (or on
overlapping quarters of it) into one temporary ``--out`` and reports, from the run folders:
runs (folders with a result), rows in results.db, duplicate executions (runs that ended more than
once in their log.txt), failed runs and driver exits ≠ 0, and folders whose metrics.jsonl epochs are not
strictly increasing; then what ``sparsebench store check`` says.  docs/scaling.md quotes it.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99]
GRID = ('name = "{name}"\ntasks = ["digits-mlp"]\nsparsities = {sparsities}\nseeds = [0, 1]\n'
        '[recipe]\nepochs = 3\nmax_train_batches = 6\n[[pruners]]\nname = "random"\n')


def trial(drivers: int, workers: int, overlapping: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sparsebench-trial-"))
    out = tmp / "out"
    grids = []
    for i in range(drivers):
        sp = SPARSITIES[i * 3: i * 3 + 6] or SPARSITIES if overlapping else SPARSITIES
        g = tmp / f"g{i}.toml"
        g.write_text(GRID.format(name=f"g{i}", sparsities=json.dumps(sp)))
        grids.append(g)
    env = dict(os.environ, SPARSEBENCH_CHECKPOINT_EVERY="0")
    procs = [subprocess.Popen([sys.executable, "-m", "benchmark", "run", str(g), "--out", str(out), "--no-progress",
                               "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for g in grids]
    errors = [p.communicate()[1] for p in procs]
    folders = [f for f in (out / "runs").iterdir() if f.is_dir()] if (out / "runs").is_dir() else []
    results = [json.loads((f / "result.json").read_text()) for f in folders if (f / "result.json").exists()]
    # executions = "end" lines: each completed execution writes one (start lines can be lost when a
    # second writer clears the folder)
    starts = {f.name: sum(1 for line in (f / "log.txt").read_text().splitlines()
                          if len(line.split(" ", 2)) > 1 and line.split(" ", 2)[1] == "end")
              for f in folders if (f / "log.txt").exists()}
    malformed = 0
    for f in folders:
        try:
            epochs = [json.loads(line)["epoch"] for line in (f / "metrics.jsonl").read_text().splitlines()]
            malformed += any(b <= a for a, b in zip(epochs, epochs[1:]))
        except (OSError, ValueError, KeyError):
            malformed += 1
    try:
        con = sqlite3.connect(out / "results.db")
        rows = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        con.close()
    except sqlite3.Error:
        rows = None
    check = subprocess.run([sys.executable, "-m", "benchmark", "store", "check", str(out)], capture_output=True,
                           text=True, env=env)
    return {"drivers": drivers, "workers": workers, "overlapping": overlapping, "runs": len(results), "rows": rows,
            "duplicate_executions": sum(1 for n in starts.values() if n > 1),
            "failed_runs": sum(r.get("status") == "failed" for r in results),
            "driver_exits_nonzero": sum(p.returncode != 0 for p in procs),
            "malformed_metrics": malformed, "store_check": check.stdout.strip().splitlines()[-1:],
            "driver_errors": [e.strip().splitlines()[-1] for e in errors if e.strip()][:3], "out": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drivers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overlapping", action="store_true")
    args = ap.parse_args()
    print(json.dumps(trial(args.drivers, args.workers, args.overlapping), indent=1))


if __name__ == "__main__":
    main()
