"""Run folders, the source of truth (DESIGN.md, "The results store").

``<out>/runs/<run_id>/`` holds ``spec.json``, ``metrics.jsonl`` (one line per epoch), ``masks.pt``
(the final masks; their densities are in ``result.json``), ``model.pt`` (final merged weights),
``log.txt`` and, written last, ``result.json``.  A folder counts as finished only when ``result.json`` exists; every file is
written atomically (temp file, fsync, rename), so a killed process never leaves a half result that
counts as done.

Durability order: every other file of the folder is written (temp file, fsync, rename; the appended
``metrics.jsonl`` fsync'd) before ``result.json``, so when ``result.json`` exists every file of the run
is on disk.  The writes are synchronous: their fsyncs cost a few milliseconds a run (a journal commit
each, 1–5 ms on a shared disk), under 0.1 % of a converged CPU run; the writer threads that once hid
them were removed (issue 22).
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from pruners.registry import ConfigError

RESULT = "result.json"

#: errno values that mean "the storage cannot take more writes", not "this run is broken" ...
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
#: ... and those that do when the file concerned lies in the output folder.
DENIED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EIO}


class OutputError(ConfigError):
    """The output folder cannot be written (disk full, read-only, permissions): the grid stops with
    one line and exit status 2; everything that finished before stays recorded."""


def is_output_error(exc: BaseException, out: Path | None = None) -> bool:
    """True for an OSError / SQLite error caused by the output storage rather than by the run."""
    if isinstance(exc, OutputError):
        return True
    if isinstance(exc, OSError):
        if exc.errno in FULL_ERRNOS:
            return True
        if exc.errno in DENIED_ERRNOS and out is not None and exc.filename:
            try:
                return Path(os.path.abspath(exc.filename)).is_relative_to(Path(out).absolute())
            except (TypeError, ValueError):
                return False
        return False
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(k in text for k in ("disk is full", "readonly database", "disk i/o error",
                                       "unable to open database"))
    return False


def output_error(out: Path, exc: BaseException) -> OutputError:
    """The one-line error for an output folder that stopped taking writes."""
    if isinstance(exc, OutputError):
        return exc
    what = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    return OutputError(f"cannot write to output folder {str(out)!r} ({what}); free space or fix its "
                       "permissions, then run the same command again to resume (finished runs are kept)")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    # unique per writer (process, thread, call): two writers of one name never rename each other's file
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_bytes(obj: Any) -> bytes:
    """The bytes :func:`atomic_write_json` writes for ``obj`` (indented, sorted keys)."""
    return (json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n").encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def fsync_path(path: Path) -> None:
    """Flush an existing file's data to disk (for files appended to in place, e.g. metrics.jsonl)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_torch(path: Path, obj: Any) -> None:
    """``torch.save`` of ``obj`` written with :func:`atomic_write_bytes` (model.pt, a pruner's artefacts)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


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


def read_metrics(folder: Path) -> list[dict] | None:
    """The epoch records of a run's metrics.jsonl; None when it is missing or malformed (a truncated
    line: ``sparsebench store check`` names it)."""
    try:
        lines = (Path(folder) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError):
        return None
    return rows if all(isinstance(r, dict) for r in rows) else None


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


OLD_FORMAT = 1   # spec format before the run id named the task (``sparsebench store migrate``)


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


def reset_unfinished(folder: Path) -> None:
    """Empty a run folder that has no result (a run killed before it finished), keeping its claim
    (``benchmark.claims``: removing it would let another driver start the same run)."""
    folder = Path(folder)
    if not folder.is_dir() or read_result(folder) is not None:
        return
    for entry in folder.iterdir():
        if entry.name in ("claim.json", "claim.json.takeover"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


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
