"""Run claims: each run executes exactly once, however many drivers share an output folder.

Before a worker starts a run it creates ``<run folder>/claim.json`` with ``O_CREAT | O_EXCL`` (atomic on
local and NFSv3+ file systems): exactly one process wins, the others leave the run to it.  The claim
holds the claimer's host, pid and a random token; its modification time is the heartbeat, refreshed
every :data:`benchmark.status.HEARTBEAT_S` seconds while the run executes
(:class:`benchmark.executors.base` ``_Heartbeat``) and the file is removed when the run ends.

A claim is *stale* — its holder is gone — when its heartbeat is older than
:data:`benchmark.status.STALE_AFTER_S`, or at once when it was made on this host by a process that no
longer exists (a killed driver or worker: a rerun on the same machine does not wait).  A stale claim
is taken over: under a short take-over lock (``claim.json.takeover``, itself O_EXCL) the claim is read
again and, if still stale, removed; the new claim is then created with O_EXCL as usual, so two drivers
that both saw the stale claim still end with one winner.  The take-over is logged in the run's log.txt.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

CLAIM = "claim.json"
TAKEOVER = CLAIM + ".takeover"
#: A take-over lock older than this (seconds) belongs to a process that died while taking over.
TAKEOVER_STALE_S = 30.0


@dataclass(frozen=True)
class Claim:
    """A claim this process holds on one run folder."""

    folder: Path
    token: str

    def touch(self) -> None:
        """Refresh the heartbeat (the claim file's modification time)."""
        try:
            os.utime(self.folder / CLAIM)
        except OSError:
            pass

    def release(self) -> None:
        """Remove the claim if it is still ours (a take-over after a long stall replaced it)."""
        holder = read_claim(self.folder)
        if holder is not None and holder.get("token") == self.token:
            (self.folder / CLAIM).unlink(missing_ok=True)


def read_claim(folder: Path) -> dict | None:
    """The claim of ``folder`` (host, pid, token, claimed_at), ``{}`` when it is unreadable (a claimer
    that died between creating and writing it), None when there is none."""
    try:
        text = (Path(folder) / CLAIM).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _pid_gone(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def holder_gone(folder: Path) -> bool:
    """True when ``folder``'s claim was made on this host by a process that no longer exists."""
    holder = read_claim(folder) or {}
    return holder.get("host") == socket.gethostname() and _pid_gone(holder.get("pid"))


def stale_reason(folder: Path, now: float | None = None) -> str | None:
    """Why the claim of ``folder`` is stale, or None when it is live (or there is none)."""
    from benchmark.status import STALE_AFTER_S

    holder = read_claim(folder)
    if holder is None:
        return None
    try:
        age = (now or time.time()) - (Path(folder) / CLAIM).stat().st_mtime
    except FileNotFoundError:
        return None
    if holder_gone(folder):
        return f"its process {holder.get('pid')} on this host is gone"
    if age > STALE_AFTER_S:
        return f"no heartbeat for {age:.0f} s"
    return None


def holder_label(folder: Path) -> str:
    """``host:pid`` of the claim's holder (for messages)."""
    holder = read_claim(folder) or {}
    return f"{holder.get('host', '?')}:{holder.get('pid', '?')}"


def try_claim(folder: Path, log=None) -> Claim | None:
    """Claim ``folder`` for this process; None when another live process holds it.

    ``log(msg)`` is told about a stale claim that was taken over."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": token,
                       "claimed_at": time.time()}).encode()
    for _ in range(3):
        try:
            fd = os.open(folder / CLAIM, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            reason = stale_reason(folder)
            if reason is None or not _take_over(folder, log, reason):
                return None
            continue
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        return Claim(folder, token)
    return None


def _take_over(folder: Path, log, reason: str) -> bool:
    """Remove a stale claim under the take-over lock; False when another process is taking it over."""
    lock = folder / TAKEOVER
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > TAKEOVER_STALE_S:
                lock.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    os.close(fd)
    try:
        again = stale_reason(folder)  # read again under the lock: another process may have taken it over
        if again is None:
            return read_claim(folder) is None
        old = holder_label(folder)
        (folder / CLAIM).unlink(missing_ok=True)
        if log is not None:
            log(f"took over the stale claim of {old} ({again})")
        return True
    finally:
        lock.unlink(missing_ok=True)
