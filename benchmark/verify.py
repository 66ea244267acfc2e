"""Verified run folders: a finished run counts only when its files are the ones it wrote.

When a run ends, the runner records in ``result.json`` a manifest — size and SHA-256 — of every other
file of its folder (spec.json, metrics.jsonl, masks.pt, model.pt, the pruner's artefacts; not the
append-only log.txt nor the transient claim / checkpoint).  Two levels of checking use it:

* :func:`quick_problem` — every file of the manifest exists with its recorded size (a ``stat`` per
  file).  ``sparsebench run`` re-runs a finished run that fails it; ``table`` and the leaderboard
  leave such runs out and say how many.
* :func:`deep_problems` — ``sparsebench store check``: also the SHA-256 of each file, metrics.jsonl
  parsed (one JSON object per line, epochs strictly increasing — two writers interleave
  ``1, 1, 2, 2``), log.txt's attempts well-formed (no two "end" lines without a start or resume
  between them), and masks.pt loaded (``weights_only=True``) with its density compared to the record.

Archived run folders (``make archive-results`` keeps result.json, spec.json, metrics.jsonl and log.txt,
not the weights) hold the marker :data:`WEIGHTS_OMITTED`: there a missing ``*.pt`` file is expected and
not a problem (a present one is still checked), so a restored archive counts as finished, is not re-run
and passes ``store check``.

Results written before the manifest existed have none: their metrics, log and masks are still
checked deeply; nothing is checked quickly.  ``store check --repair`` moves the folders of broken
runs to ``<out>/broken/`` (never deletes them) so that the next ``sparsebench run`` runs them again.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from benchmark.runfolder import RESULT

MANIFEST = "files"
#: Marker written by ``make archive-results`` into every archived run folder: its weight files were left out.
WEIGHTS_OMITTED = "weights.omitted"


def _omitted(folder: Path, name: str) -> bool:
    """Whether ``name`` is a weight file the archive of ``folder`` left out on purpose."""
    return name.endswith(".pt") and (Path(folder) / WEIGHTS_OMITTED).is_file()
#: Files of a run folder that are not part of its manifest.
UNLISTED = {RESULT, "log.txt", "checkpoint.pt", "claim.json", "claim.json.takeover", "heartbeat"}
BROKEN = "broken"
RERUN_HINT = "run its grid again to re-run it, or 'sparsebench store check OUT --repair' to set it aside"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(folder: Path) -> dict[str, dict]:
    """``{file name: {"size", "sha256"}}`` of the files a run wrote (all but :data:`UNLISTED` and temp files)."""
    out = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.name not in UNLISTED and not path.name.startswith("."):
            out[path.name] = {"size": path.stat().st_size, "sha256": sha256(path)}
    return out


def quick_problem(folder: Path, rec: dict) -> str | None:
    """The first file of ``rec``'s manifest that is missing or has another size; None when all match."""
    for name, meta in sorted((rec.get(MANIFEST) or {}).items()):
        try:
            size = (Path(folder) / name).stat().st_size
        except OSError:
            if _omitted(folder, name):
                continue
            return f"{name} is missing"
        if size != meta.get("size"):
            return f"{name} has {size} bytes, {meta.get('size')} recorded (truncated or overwritten)"
    return None


def _metrics_problem(path: Path) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return f"metrics.jsonl cannot be read ({exc})"
    last = 0
    for i, line in enumerate(lines, 1):
        try:
            epoch = json.loads(line)["epoch"]
        except (ValueError, KeyError, TypeError):
            return f"metrics.jsonl line {i} is not an epoch record (truncated?)"
        if not isinstance(epoch, int) or epoch <= last:
            return f"metrics.jsonl epochs not strictly increasing at line {i} (epoch {epoch} after {last}: two writers?)"
        last = epoch
    return None


def _log_problem(path: Path) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    open_attempt = False
    for line in lines:
        words = line.split(" ", 2)
        event = words[1] if len(words) > 1 else ""
        if event in ("start", "resume"):
            open_attempt = True
        elif event == "end":
            if not open_attempt:
                return "log.txt has two attempts' ends without a start between them (two writers?)"
            open_attempt = False
    return None


def _masks_problem(path: Path, rec: dict) -> str | None:
    from pruners import Masks

    try:
        masks = Masks.load(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem
        return f"masks.pt cannot be loaded ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
    want = rec.get("achieved_sparsity")
    if want is not None and abs(masks.sparsity() - float(want)) > 1e-9:
        return f"masks.pt has sparsity {masks.sparsity():.6f}, {float(want):.6f} recorded"
    return None


def deep_problems(folder: Path, rec: dict) -> list[str]:
    """Every problem of a finished run folder (empty when its files are what the run wrote)."""
    folder = Path(folder)
    problems = []
    files = rec.get(MANIFEST) or {}
    metrics = folder / "metrics.jsonl"
    # one problem per file: metrics.jsonl's own parse, when it fails, says more than its size or hash
    parsed = _metrics_problem(metrics) if metrics.is_file() else None
    for name, meta in sorted(files.items()):
        path = folder / name
        if name == "metrics.jsonl" and parsed:
            continue
        if not path.is_file():
            if not _omitted(folder, name):
                problems.append(f"{name} is missing")
        elif path.stat().st_size != meta.get("size"):
            problems.append(f"{name} has {path.stat().st_size} bytes, {meta.get('size')} recorded (truncated?)")
        elif sha256(path) != meta.get("sha256"):
            problems.append(f"{name} differs from the file the run wrote (SHA-256 mismatch)")
    if metrics.is_file():
        problems.append(parsed)
    elif rec.get("status") == "ok":
        problems.append("metrics.jsonl is missing")
    problems.append(_log_problem(folder / "log.txt"))
    if rec.get("status") == "ok":
        if (folder / "masks.pt").is_file():
            if not any(p and p.startswith("masks.pt") for p in problems):
                problems.append(_masks_problem(folder / "masks.pt", rec))
        elif not _omitted(folder, "masks.pt"):
            problems.append("masks.pt is missing")
    return list(dict.fromkeys(p for p in problems if p))


def set_aside_result(folder: Path) -> None:
    """Rename a run's result.json to ``result.json.<time>.old`` so the run counts as not done (kept for
    inspection; the run's own files stay, a checkpoint resumes it)."""
    path = Path(folder) / RESULT
    if path.exists():
        os.replace(path, path.with_name(f".{RESULT}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.old"))


def move_aside(out: Path, folder: Path) -> Path:
    """Move a broken run folder to ``<out>/broken/<run id>-<time>`` (never deleted); returns the new path."""
    dest_root = Path(out) / BROKEN
    dest_root.mkdir(exist_ok=True)
    dest = dest_root / f"{Path(folder).name}-{time.strftime('%Y%m%dT%H%M%S')}"
    os.replace(folder, dest)
    return dest
