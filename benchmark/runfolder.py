"""Run folders, the source of truth (DESIGN.md, "The results store").

``<out>/runs/<run_id>/`` holds ``spec.json``, ``metrics.jsonl`` (one line per epoch), ``masks.pt``
(+ ``masks.pt.json`` report), ``model.pt`` (final merged weights), ``log.txt`` and, written last,
``result.json``.  A folder counts as finished only when ``result.json`` exists; every file is
written atomically (temp file, fsync, rename), so a killed process never leaves a half result that
counts as done.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from pruners.registry import ConfigError

RESULT = "result.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n").encode())


def runs_dir(out: Path) -> Path:
    return Path(out) / "runs"


def run_dir(out: Path, run_id: str) -> Path:
    return runs_dir(out) / run_id


def read_result(folder: Path) -> dict | None:
    """The finished result of a run folder, or None when the run is not finished (or unreadable)."""
    path = Path(folder) / RESULT
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("run_id") == Path(folder).name else None


def iter_results(out: Path) -> Iterator[dict]:
    """Every finished result under ``out/runs`` (sorted by run id)."""
    root = runs_dir(out)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if folder.is_dir():
            rec = read_result(folder)
            if rec is not None:
                yield rec


def reset_unfinished(folder: Path) -> None:
    """Remove a run folder that has no result (a run killed before it finished)."""
    folder = Path(folder)
    if folder.exists() and read_result(folder) is None:
        shutil.rmtree(folder, ignore_errors=True)


def ensure_writable(out: Path) -> Path:
    """Create ``out`` (and runs/) or raise a ConfigError that says how to fix it."""
    out = Path(out)
    try:
        runs_dir(out).mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output folder {str(out)!r} is not writable ({exc.strerror}); "
                          "pass --out with a folder you can write to") from None
    return out
