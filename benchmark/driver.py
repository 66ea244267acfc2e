"""The grid driver: skip what is done, run the rest on an executor, record results in the store.

Resuming is the default: a run whose folder holds a ``result.json`` is done (its row is added to the
store if a killed driver missed it) and is not run again; an unfinished folder resumes from its last
epoch checkpoint (``benchmark.checkpoint``) or, without one, starts over.  Failed runs are retried
(from their checkpoint when they have one) only with ``retry_failed``.

Only the driver writes the store.  When the output folder stops taking writes (disk full, read-only)
the grid stops with :class:`benchmark.runfolder.OutputError` — one line, exit status 2 — and every
run recorded before stays recorded (its result.json and its row).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from benchmark.executors.base import Executor
from benchmark.runfolder import ensure_writable, is_output_error, output_error, read_result, run_dir
from benchmark.spec import RunSpec
from benchmark.store import Store


@dataclass
class GridReport:
    total: int
    skipped: int
    ran: int = 0
    status: dict[str, int] = field(default_factory=dict)
    detached: bool = False     # the runs were submitted and the driver did not wait (Slurm --detach)
    submitted: int = 0


def format_line(rec: dict) -> str:
    """The live line printed when a run finishes."""
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
             echo: Callable[[str], None] | None = None,
             resources: Mapping[str, Any] | None = None) -> GridReport:
    """Run every spec not yet done under ``out``; returns counts by status.

    ``resources`` maps run ids to :class:`benchmark.grid.Resources` (``Grid.resources``).
    """
    out = ensure_writable(Path(out))
    try:
        store = Store(out)
        store.ingest_folders()
    except Exception as exc:
        if is_output_error(exc, out):
            raise output_error(out, exc) from None
        raise
    pending: list[RunSpec] = []
    for spec in specs:
        rec = read_result(run_dir(out, spec.run_id))
        if rec is None or (retry_failed and rec.get("status") == "failed"):
            pending.append(spec)
    report = GridReport(total=len(specs), skipped=len(specs) - len(pending))
    if not pending:
        return report
    if executor.detached():
        for _ in executor.run(pending, out, grid, resources or {}):
            pass
        report.detached, report.submitted = True, len(pending)
        return report
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc=grid or "runs", unit="run", file=sys.stderr, dynamic_ncols=True)
    write = echo or (bar.write if bar is not None else print)
    try:
        for rec in executor.run(pending, out, grid, resources or {}):
            try:
                store.upsert([rec])
            except Exception as exc:  # the run folder has the result; 'store rebuild' restores the row
                if is_output_error(exc, out):
                    raise output_error(out, exc) from None
                raise
            report.ran += 1
            report.status[rec["status"]] = report.status.get(rec["status"], 0) + 1
            write(format_line(rec))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return report
