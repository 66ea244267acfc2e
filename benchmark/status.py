"""``sparsebench status OUT [--grid GRID.toml]``: where every run of an output folder stands.

States, from the run folders (the source of truth) alone:

* ``done`` — ``result.json`` with status ok;
* ``failed`` / ``diverged`` — ``result.json`` with that status; the reason is shown;
* ``running`` — no result yet, and the folder's claim (its heartbeat, touched every
  :data:`HEARTBEAT_S` seconds by the worker running it; :mod:`benchmark.claims`), log, metrics or checkpoint changed within
  ``stale_after`` seconds;
* ``interrupted`` — no result and nothing changed for longer (a killed driver or lost worker); the
  next ``sparsebench run`` resumes it from its checkpoint (the epoch is shown) or starts it over;
* ``pending`` — in the grid (needs ``--grid``) but no folder yet.

Runs are grouped per grid: the grid name recorded in ``result.json`` (or ``--grid``'s name).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from benchmark.checkpoint import CHECKPOINT
from benchmark.claims import CLAIM, holder_gone
from benchmark.runfolder import read_result, run_dir, runs_dir
from benchmark.spec import RunSpec, run_label

STATES = ("done", "running", "interrupted", "failed", "diverged", "pending")
HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0
_ACTIVITY = (CLAIM, "log.txt", "metrics.jsonl", CHECKPOINT, "spec.json")


@dataclass
class RunStatus:
    run_id: str
    state: str
    grid: str
    label: str
    reason: str = ""
    epoch: int | None = None      # last epoch in metrics.jsonl (unfinished runs)


def _label(spec: dict | None) -> str:
    if not spec:
        return "?"
    return run_label(spec)


def _last_epoch(folder: Path) -> int | None:
    try:
        lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return int(json.loads(lines[-1])["epoch"]) if lines else None
    except (OSError, ValueError, KeyError, IndexError):
        return None


def folder_status(folder: Path, grid: str = "", spec: dict | None = None,
                  stale_after: float = STALE_AFTER_S, now: float | None = None) -> RunStatus:
    """The state of one run folder (``pending`` when it does not exist)."""
    rec = read_result(folder)
    if rec is not None:
        state = {"ok": "done"}.get(rec.get("status"), rec.get("status") or "failed")
        return RunStatus(folder.name, state, rec.get("grid") or grid, _label(rec.get("spec") or spec),
                         rec.get("reason") or "")
    if not folder.is_dir():
        return RunStatus(folder.name, "pending", grid, _label(spec))
    if spec is None:
        try:
            spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            spec = None
    mtimes = [(folder / n).stat().st_mtime for n in _ACTIVITY if (folder / n).exists()]
    age = (now or time.time()) - max(mtimes, default=0.0)
    epoch = _last_epoch(folder)
    # a claim whose process on this host is gone: interrupted at once, not "running" for minutes
    if age <= stale_after and not holder_gone(folder):
        return RunStatus(folder.name, "running", grid, _label(spec), epoch=epoch)
    resume = (f"resumes after epoch {epoch}" if (folder / CHECKPOINT).exists() and epoch
              else "starts over")
    return RunStatus(folder.name, "interrupted", grid, _label(spec),
                     f"no progress for {age:.0f} s; the next run {resume}", epoch)


def run_statuses(out: Path, specs: Iterable[RunSpec] | None = None, grid: str = "",
                 stale_after: float = STALE_AFTER_S) -> list[RunStatus]:
    """Statuses of the grid's runs (``specs``), or of every run folder under ``out`` without a grid."""
    out = Path(out)
    now = time.time()
    if specs is not None:
        return [folder_status(run_dir(out, s.run_id), grid, s.to_dict(), stale_after, now) for s in specs]
    root = runs_dir(out)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [folder_status(f, grid, None, stale_after, now) for f in folders]


def format_status(statuses: list[RunStatus]) -> str:
    """Counts per grid and state, then one line per run that is not done or pending."""
    from tabulate import tabulate

    grids = sorted({s.grid or "(unknown grid)" for s in statuses})
    rows = []
    for g in grids:
        c = Counter(s.state for s in statuses if (s.grid or "(unknown grid)") == g)
        rows.append([g, *(c.get(k, 0) for k in STATES), sum(c.values())])
    lines = [tabulate(rows, headers=["grid", *STATES, "total"])]
    for s in statuses:
        if s.state in ("failed", "diverged", "interrupted"):
            lines.append(f"{s.run_id} {s.state:11s} {s.label}: {s.reason}")
        elif s.state == "running":
            at = f"epoch {s.epoch} done" if s.epoch else "starting"
            lines.append(f"{s.run_id} {s.state:11s} {s.label}: {at}")
    return "\n".join(lines)
