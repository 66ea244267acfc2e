"""The grid driver: skip what is done, run the rest on an executor, record results in the store.

Resuming is the default: a run whose folder holds a ``result.json`` is done (its row is added to the
store if a killed driver missed it) and is not run again; an unfinished folder resumes from its last
epoch checkpoint (``benchmark.checkpoint``) or, without one, starts over.  Failed runs are retried
(from their checkpoint when they have one) only with ``retry_failed``.

Several drivers may share one output folder (one per Slurm allocation, a second terminal): a worker
claims each run before it starts it (:mod:`benchmark.claims`), so every run executes once.  A run
claimed by another driver is waited for — its result is added to this driver's store when it
appears, or the run is executed here when the claim goes stale — so each driver ends with its whole
grid done.  A finished run whose files fail their quick check (:func:`benchmark.verify.quick_problem`:
a file of its manifest missing or of another size) does not count as done: it is run again, and the
driver says so in one line.

Only the driver writes the store.  When the output folder stops taking writes (disk full, read-only)
the grid stops with :class:`benchmark.runfolder.OutputError` — one line, exit status 2 — and every
run recorded before stays recorded (its result.json and its row).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from benchmark.claims import read_claim, stale_reason
from benchmark.executors.base import CLAIMED, ELSEWHERE, Executor
from benchmark.runfolder import ensure_writable, is_output_error, output_error, read_result, run_dir
from benchmark.spec import RunSpec, run_label
from benchmark.store import Store


@dataclass
class GridReport:
    total: int
    skipped: int
    ran: int = 0
    status: dict[str, int] = field(default_factory=dict)
    detached: bool = False     # the runs were submitted and the driver did not wait (Slurm --detach)
    submitted: int = 0
    elsewhere: int = 0         # finished by another driver sharing the output folder
    rerun_broken: int = 0      # finished runs whose files failed their check, run again


def format_line(rec: dict) -> str:
    """The live line printed when a run finishes."""
    label = run_label(rec)
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
    from benchmark.verify import quick_problem, set_aside_result

    pending: list[RunSpec] = []
    notes: list[str] = []
    for spec in specs:
        folder = run_dir(out, spec.run_id)
        rec = read_result(folder)
        problem = quick_problem(folder, rec) if rec is not None else None
        if problem is not None:
            notes.append(f"{spec.run_id}: {problem}; running it again")
            set_aside_result(folder)
            rec = None
        elif rec is not None and retry_failed and rec.get("status") == "failed":
            set_aside_result(folder)  # so that a worker of this or another driver sees it as not done
            rec = None
        if rec is None:
            pending.append(spec)
    report = GridReport(total=len(specs), skipped=len(specs) - len(pending), rerun_broken=len(notes))
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
    for note in notes:
        write(note)

    def record(rec: dict) -> None:
        try:
            store.upsert([rec])
        except Exception as exc:  # the run folder has the result; 'store rebuild' restores the row
            if is_output_error(exc, out):
                raise output_error(out, exc) from None
            raise
        if rec.get(ELSEWHERE):
            report.elsewhere += 1
            write(f"{rec['run_id']} finished by another driver")
        else:
            report.ran += 1
            report.status[rec["status"]] = report.status.get(rec["status"], 0) + 1
            write(format_line(rec))
        if bar is not None:
            bar.update(1)

    by_id = {s.run_id: s for s in pending}
    todo, waiting, wait_s = pending, [], 1.0
    try:
        while todo or waiting:
            if todo:
                for rec in executor.run(todo, out, grid, resources or {}):
                    if rec.get("status") == CLAIMED:
                        waiting.append(rec["run_id"])
                    else:
                        record(rec)
                todo = []
                continue
            # runs other drivers hold: wait for their result, or run them here once their claim is stale
            time.sleep(wait_s)
            wait_s = min(10.0, wait_s * 1.5)
            still = []
            for rid in waiting:
                folder = run_dir(out, rid)
                rec = read_result(folder)
                if rec is not None:
                    record({**rec, ELSEWHERE: True})
                elif read_claim(folder) is None or stale_reason(folder) is not None:
                    todo.append(by_id[rid])
                else:
                    still.append(rid)
            waiting = still
    finally:
        if bar is not None:
            bar.close()
        if sys.exc_info()[0] is not None:  # stopped (Ctrl-C, SIGTERM): results written by workers get their rows
            try:
                store.ingest_folders()
            except Exception:  # noqa: BLE001 - the next run or 'store rebuild' adds them
                pass
    return report
