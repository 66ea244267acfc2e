"""``sparsebench store migrate OUT``: rewrite run folders of spec format 1 to the current format.

Format 1 (before the run id named the whole run) recorded the task by name only.  Migrating a finished
run resolves its task from the catalogue as it is now (dataset, ``dataset_args``, model, ``model_args``)
and today's class versions, computes the new run id, and moves the folder there with its spec.json and
result.json rewritten; everything else in the folder (metrics, masks, model, log) is kept as it is.
That is right only if the task has not changed since the run was made — the reason format 1 was
replaced; when in doubt, re-run the grid instead (its runs get the new ids and old folders are not
counted as done).  Each folder is migrated through a temporary copy that is renamed into place, so a
killed migration leaves every run either old or new and a second call finishes it.  Unfinished runs of
format 1 are left in place (a rerun of their grid trains them under the new id).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmark.runfolder import RESULT, atomic_write_json, old_format_folders, read_result, run_dir, runs_dir
from benchmark.spec import RunSpec
from benchmark.store import Store

def migrate(out: Path) -> dict[str, int]:
    """Migrate every finished format-1 run folder of ``out`` (see the module docstring); returns counts
    of ``migrated``, ``already`` (the new id already had a finished folder: the old one is removed) and
    ``unfinished`` (left in place).  The store is rebuilt from the folders afterwards."""
    out = Path(out)
    counts = {"migrated": 0, "already": 0, "unfinished": 0}
    for folder in old_format_folders(out):
        rec = read_result(folder)
        if rec is None:
            counts["unfinished"] += 1
            continue
        spec = RunSpec.from_old_dict(json.loads((folder / "spec.json").read_text(encoding="utf-8")))
        target = run_dir(out, spec.run_id)
        if read_result(target) is not None:
            shutil.rmtree(folder)
            counts["already"] += 1
            continue
        tmp = runs_dir(out) / f".migrate-{spec.run_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp)
        (tmp / "checkpoint.pt").unlink(missing_ok=True)
        atomic_write_json(tmp / "spec.json", spec.to_dict())
        rec.update(run_id=spec.run_id, spec=spec.to_dict(), dataset=spec.dataset, model=spec.model)
        atomic_write_json(tmp / RESULT, rec)
        shutil.rmtree(target, ignore_errors=True)   # an unfinished folder of the new id: superseded
        tmp.rename(target)
        shutil.rmtree(folder)
        counts["migrated"] += 1
    Store(out).rebuild()
    return counts
