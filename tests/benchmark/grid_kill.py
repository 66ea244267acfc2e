"""Kill a running grid mid-way (the SIGKILL tests of the local and Ray executors)."""
from __future__ import annotations

from pathlib import Path


def kill_after_results(cmd: list[str], out: Path, env: dict, results: int, within: float) -> int:
    """Start ``cmd`` (a ``sparsebench run``), SIGKILL it once ``results`` runs under ``out`` have a
    result.json (or after ``within`` seconds), and return how many had one at the kill."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + within
    while time.time() < deadline and len(list(out.glob("runs/*/result.json"))) < results:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(list(out.glob("runs/*/result.json")))
