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

from benchmark.runfolder import RESULT, atomic_write_json, read_result, run_dir, runs_dir
from benchmark.spec import RunSpec

OLD_FORMAT = 1


def spec_format(folder: Path) -> int | None:
    """The ``spec_version`` of a run folder's spec.json (``None`` when it has none or it is unreadable)."""
    try:
        spec = json.loads((Path(folder) / "spec.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return spec.get("spec_version", OLD_FORMAT) if isinstance(spec, dict) else None


def old_format_folders(out: Path) -> list[Path]:
    """Run folders under ``out`` whose spec.json is of format 1."""
    root = runs_dir(Path(out))
    if not root.is_dir():
        return []
    return [f for f in sorted(root.iterdir()) if f.is_dir() and not f.name.startswith(".")
            and spec_format(f) == OLD_FORMAT]


def migrate(out: Path) -> dict[str, int]:
    """Migrate every finished format-1 run folder of ``out`` (see the module docstring); returns counts
    of ``migrated``, ``already`` (the new id already had a finished folder: the old one is removed) and
    ``unfinished`` (left in place).  The store is rebuilt from the folders afterwards."""
    from benchmark.store import Store

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
