"""The grid driver: skip what is done, run the rest on an executor, record results in the store.

Resuming is the default: a run whose folder holds a ``result.json`` is done (its row is added to the
store if a killed driver missed it) and is not run again; an unfinished folder is discarded and the
run starts over.  Failed runs are retried only with ``retry_failed``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmark.executors.base import Executor
from benchmark.runfolder import ensure_writable, read_result, run_dir
from benchmark.spec import RunSpec
from benchmark.store import Store


@dataclass
class GridReport:
    total: int
    skipped: int
    ran: int = 0
    status: dict[str, int] = field(default_factory=dict)


def format_line(rec: dict) -> str:
    """The live line printed when a run finishes."""
    spec = rec.get("spec") or {}
    label = f"{rec.get('task')} {rec.get('pruner')}"
    if rec.get("reparam") not in (None, "none"):
        label += f"+{rec['reparam']}"
    label += f" s={rec.get('target_sparsity', 0):g} seed={rec.get('seed')}"
    if rec.get("status") == "ok":
        top1 = rec.get("final_top1")
        acc = f"top1 {top1:.2f}%" if top1 is not None else f"test loss {rec.get('final_test_loss'):.4g}"
        return (f"{rec['run_id']} ok      {label}: {acc}, sparsity {100 * rec['achieved_sparsity']:.2f}%, "
                f"{rec.get('total_time_s', 0):.1f}s")
    return f"{rec['run_id']} {rec.get('status'):7s} {label}: {rec.get('reason')}"


def run_grid(specs: list[RunSpec], out: str | Path, executor: Executor, grid: str = "",
             retry_failed: bool = False, progress: bool = True,
             echo: Callable[[str], None] | None = None) -> GridReport:
    """Run every spec not yet done under ``out``; returns counts by status."""
    out = ensure_writable(Path(out))
    store = Store(out)
    store.ingest_folders()
    pending: list[RunSpec] = []
    for spec in specs:
        rec = read_result(run_dir(out, spec.run_id))
        if rec is None or (retry_failed and rec.get("status") == "failed"):
            pending.append(spec)
    report = GridReport(total=len(specs), skipped=len(specs) - len(pending))
    if not pending:
        return report
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc=grid or "runs", unit="run", file=sys.stderr, dynamic_ncols=True)
    write = echo or (bar.write if bar is not None else print)
    try:
        for rec in executor.run(pending, out, grid):
            store.upsert([rec])
            report.ran += 1
            report.status[rec["status"]] = report.status.get(rec["status"], 0) + 1
            write(format_line(rec))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return report
