"""The local executor: a pool of worker processes on this machine, one run per worker.

torch's intra-op threads are split between workers (``cores // workers`` each) so that two workers
on two cores do not oversubscribe the CPU.  With one worker and no per-run time limit the runs
execute in this process (no start-up cost).  Workers use the ``spawn`` start method: forking a
process that already ran torch's OpenMP thread pool can deadlock.

The pool is our own (not ``concurrent.futures``) so that it knows which run each worker holds:

* a worker that dies inside a run (``os._exit``, a signal, the out-of-memory killer) gets its run
  recorded ``failed`` — "worker process died (exit code …)" — and is replaced by a fresh worker;
  the other runs go on (``ProcessPoolExecutor`` would fail every pending run with BrokenProcessPool);
* with ``run_timeout`` a run still going after that many seconds is stopped by killing its worker
  (the hard limit; nothing inside the run can delay it) and recorded ``failed`` — "exceeded the
  per-run time limit of N s"; the worker is replaced.

Either way the run folder keeps its last checkpoint, so ``--retry-failed`` resumes the run.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from benchmark.executors.base import (EXECUTORS, Executor, died_reason, execute_in_worker, time_limit_reason,
                                      worker_imports)
from benchmark.spec import RunSpec
from pruners.registry import ConfigError

#: Seconds a worker gets to exit after being asked to stop before it is killed.
STOP_GRACE_S = 10.0


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _worker_main(conn: mpc.Connection, threads: int, imports: list[str]) -> None:
    """Worker loop: receive (spec dict, out, device, grid), send back ("ok", record) or an error."""
    torch.set_num_threads(threads)
    import benchmark.runner  # noqa: F401  (the slow imports happen before any run's clock starts)
    from benchmark.executors.base import load_worker_imports

    load_worker_imports(imports)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        spec_dict, out, device, grid = msg
        conn.send(("started", None))  # the time limit counts from here, not from the worker's start-up
        try:
            conn.send(("ok", execute_in_worker(spec_dict, out, device, grid, None, imports)))
        except ConfigError as exc:  # incl. OutputError: the driver stops with this one line
            conn.send(("config", str(exc)))
        except Exception:  # a bug outside the run (execute records run errors itself)
            conn.send(("error", traceback.format_exc()))


@dataclass
class _Worker:
    proc: Any
    conn: mpc.Connection
    spec: RunSpec | None = None
    started: float = 0.0
    started_at: str = ""
    extra: dict = field(default_factory=dict)


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Process pool on this machine (``--workers N``; ``--run-timeout S`` for a hard per-run limit)."""

    name = "local"
    cli_options = frozenset({"workers"})

    def __init__(self, workers: int = 1, device: str = "cpu", run_timeout: float | None = None, **_: Any) -> None:
        self.workers = max(1, int(workers))
        self.device = device
        self.run_timeout = float(run_timeout) if run_timeout else None

    def run(self, specs: list[RunSpec], out: Path, grid: str,
            resources: Mapping[str, Any] | None = None) -> Iterator[dict]:
        if not specs:
            return
        if self.workers == 1 and self.run_timeout is None:
            torch.set_num_threads(threads_per_worker(1))
            for spec in specs:
                yield execute_in_worker(spec.to_dict(), str(out), self.device, grid, None, [])
            return
        yield from self._pool(specs, Path(out), grid)

    # the pool ------------------------------------------------------------------------------------
    def _start(self, ctx: Any, threads: int, imports: list[str]) -> _Worker:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker_main, args=(child, threads, imports), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent)

    def _pool(self, specs: list[RunSpec], out: Path, grid: str) -> Iterator[dict]:
        from benchmark.runner import now, record_failure

        ctx = mp.get_context("spawn")
        n = min(self.workers, len(specs))
        threads, imports = threads_per_worker(self.workers), worker_imports()
        pending = deque(specs)
        workers: list[_Worker | None] = [self._start(ctx, threads, imports) for _ in range(n)]
        try:
            while pending or any(w is not None and w.spec is not None for w in workers):
                for i, w in enumerate(workers):
                    if w is None and pending:  # replace a worker that died or was stopped
                        w = workers[i] = self._start(ctx, threads, imports)
                    if w is not None and w.spec is None and pending:
                        w.spec = pending.popleft()
                        w.started, w.started_at = math.inf, now()   # until the worker says "started"
                        w.conn.send((w.spec.to_dict(), str(out), self.device, grid))
                busy = [w for w in workers if w is not None and w.spec is not None]
                timeout = None
                if self.run_timeout is not None:
                    first = min(w.started + self.run_timeout for w in busy)
                    timeout = None if first == math.inf else max(0.0, first - time.monotonic())
                waitables = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
                ready = set(mpc.wait(waitables, timeout=timeout))
                for i, w in enumerate(workers):
                    if w is None or w.spec is None:
                        continue
                    spec = w.spec
                    if w.conn in ready or w.proc.sentinel in ready:
                        msg = None
                        try:
                            if w.conn.poll():
                                msg = w.conn.recv()
                        except (EOFError, OSError):
                            msg = None
                        if msg is not None and msg[0] == "started":
                            w.started, w.started_at = time.monotonic(), now()
                            continue
                        if msg is not None:
                            w.spec = None
                            kind, payload = msg
                            if kind == "ok":
                                yield payload
                                continue
                            if kind == "config":
                                raise ConfigError(payload)
                            raise RuntimeError(f"worker failed outside the run {spec.run_id}:\n{payload}")
                        # no message and the process is gone: it died inside the run
                        w.proc.join(timeout=STOP_GRACE_S)
                        if w.proc.is_alive():  # the pipe broke but the process lives: stop it
                            w.proc.kill()
                            w.proc.join()
                        rec = record_failure(spec, out, died_reason(w.proc.exitcode), device=self.device,
                                             grid=grid, started_at=w.started_at,
                                             total_time_s=_elapsed(w))
                        w.conn.close()
                        workers[i] = None
                        yield rec
                    elif self.run_timeout is not None and time.monotonic() - w.started >= self.run_timeout:
                        w.proc.kill()
                        w.proc.join()
                        w.conn.close()
                        rec = record_failure(spec, out, time_limit_reason(self.run_timeout), device=self.device,
                                             grid=grid, started_at=w.started_at,
                                             total_time_s=_elapsed(w))
                        workers[i] = None
                        yield rec
        finally:
            _stop([w for w in workers if w is not None])


def _elapsed(w: _Worker) -> float | None:
    return None if w.started == math.inf else time.monotonic() - w.started


def _stop(workers: list[_Worker]) -> None:
    """Ask idle workers to exit, kill busy ones (the driver is stopping), reap all."""
    for w in workers:
        try:
            if w.spec is None:
                w.conn.send(None)
            else:
                w.proc.kill()
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + STOP_GRACE_S
    for w in workers:
        w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        try:
            w.conn.close()
        except OSError:
            pass
