"""Run folders, the source of truth (DESIGN.md, "The results store").

``<out>/runs/<run_id>/`` holds ``spec.json``, ``metrics.jsonl`` (one line per epoch), ``masks.pt``
(the final masks; their densities are in ``result.json``), ``model.pt`` (final merged weights),
``log.txt`` and, written last, ``result.json``.  A folder counts as finished only when ``result.json`` exists; every file is
written atomically (temp file, fsync, rename), so a killed process never leaves a half result that
counts as done.

Durability order: the runner hands the folder's other files to a :class:`BackgroundWrites` (writer
threads; the same temp file, fsync, rename per file, plus an fsync of the appended
``metrics.jsonl``) and waits for all of them before it writes ``result.json`` (fsync'd inline).  So
when ``result.json`` exists, every file of the run is on disk — as with inline writes — while the
fsyncs (a journal commit each, 1–5 ms on a shared disk) overlap training and the final measurements
instead of adding to the run time.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

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


class BackgroundWrites:
    """File writes of one run folder done by background threads; :meth:`wait` before the commit record.

    Why: each fsync is a journal commit of the file system (1–5 ms here, more when the disk is shared)
    and a run folder has five or more files, which made the inline fsyncs ~3 % of a ``digits-mlp``
    run.  Each job still writes its file exactly as :func:`atomic_write_bytes` does (temp file,
    fsync, rename), so a file under its final name is always complete; the threads only move the
    waiting off the run's critical path (fsync releases the GIL), so it overlaps the training
    (``spec.json``) or the final evaluation and connectivity (masks, model).  Jobs run concurrently
    (up to :data:`WRITER_THREADS`): the file system can then serve several fsyncs with one journal commit,
    and on a loaded machine the thread wake-ups after each fsync are not paid one after another.
    Jobs on the same path run in the order they were queued.  The runner calls :meth:`wait` before it
    writes ``result.json``: a finished result still implies that every file of its folder is durable.

    The first error of a job is re-raised by :meth:`wait` (the other jobs still run, so the folder
    ends in a consistent state).  The threads belong to one pool per process (:func:`_writer_pool`),
    kept between runs: starting a thread costs a scheduler round trip, ~0.5 ms each on a loaded
    machine, more than the fsync it would hide.
    """

    def __init__(self) -> None:
        self._jobs: list[Future] = []
        self._by_path: dict[Path, Future] = {}
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], path: Path, *args: Any) -> None:
        """Run ``fn(path, *args)`` on a writer thread (after any job queued before it on ``path``)."""
        path = Path(path)
        with self._lock:
            before = self._by_path.get(path)
        if before is not None:
            before.exception()  # same file: keep the order (rare; its error is reported by wait())
        with self._lock:
            job = _writer_pool().submit(fn, path, *args)
            self._jobs.append(job)
            self._by_path[path] = job

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Queue :func:`atomic_write_bytes` of ``data`` (looked up when the job runs)."""
        self.submit(_write_bytes, Path(path), data)

    def write_json(self, path: Path, obj: Any) -> None:
        """Queue :func:`atomic_write_json` of ``obj`` (serialised now, so later changes do not leak in)."""
        self.write_bytes(path, json_bytes(obj))

    def write_torch(self, path: Path, obj: Any) -> None:
        """Queue ``torch.save`` of ``obj`` into :func:`atomic_write_bytes` — the serialisation too runs on
        the writer thread, so ``obj``'s tensors must not change before :meth:`wait`."""
        self.submit(_write_torch, Path(path), obj)

    def sync(self, path: Path) -> None:
        """Queue an fsync of the existing file ``path``."""
        self.submit(fsync_path, Path(path))

    def wait(self) -> None:
        """Block until every queued job has finished; re-raise the first job's error, if any."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
            self._by_path.clear()
        first: BaseException | None = None
        for job in jobs:
            exc = job.exception()
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first


#: Writer threads per process (a run's final batch is 4–5 files).
WRITER_THREADS = 4
_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _writer_pool() -> ThreadPoolExecutor:
    """The process's writer threads (created on first use; a forked child makes its own)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=WRITER_THREADS,
                                                     thread_name_prefix="sparsebench-writes"))
        return _POOL[1]


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)  # the module attribute at call time (tests replace it)


def _write_torch(path: Path, obj: Any) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    _write_bytes(path, buf.getvalue())


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
