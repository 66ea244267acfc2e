"""The local executor: a pool of worker processes on this machine, one run per worker.

Threads: every run gets :func:`run_threads` torch intra-op threads — the grid's ``cpus`` for the run
(``[resources]``, default 1), or ``$SPARSEBENCH_THREADS`` when set, at most ``cores // workers`` so
that the workers never oversubscribe the machine — whatever the number of workers.  Two reasons:

* results: on CPU, torch's kernels may split reductions differently with another thread count (a
  LeNet-5 run ends with other weights at 1 and 2 threads; the MLP tasks do not), so a run's result
  must not depend on ``--workers``: the same grid gives the same masks, metrics and weights with 1
  or N workers (tests/benchmark/test_executors.py);
* speed: the quick grid's models are small, and torch's threads spin-wait for each other; with any
  other job on the machine, 2 threads made a ``digits-mlp`` / ``fmnist-lenet300`` run 10–20× slower
  than 1 thread (docs/scaling.md, "Threads").  Grids parallelise over runs instead (``--workers``),
  as the Ray and Slurm executors do (one thread per requested CPU).

With one worker and no per-run time limit the runs of built-in methods execute in this process (a
plugin's run goes to a worker, so its crash cannot end the driver; no start-up cost; the
thread count is set per run and restored afterwards).  Workers are started by a ``forkserver``
(:func:`worker_context`): a clean process, started once, that imports ``benchmark.runner`` (torch,
torchvision, the suite: ~2.5 s) and then forks each worker from itself in milliseconds, so two
workers no longer import everything twice while the driver loads the datasets (issue 10: the quick
grid's start-up on 2 cores).  The driver itself is never forked: forking a process that already ran
torch's OpenMP thread pool can deadlock; the server runs no torch operation.  Elsewhere than on Linux
(macOS, where forking after loading system frameworks is unsafe; Windows, which has no fork) workers
are spawned.  A forked worker takes the driver's current environment,
working directory and ``sys.path`` from its start-up message, as a spawned one would inherit them.
A worker stays alive for all its runs, so its imports and the datasets it loaded
(``benchmark.runner.load_task_data`` caches per process) serve every later run.

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
import signal
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from benchmark.executors.base import (EXECUTORS, Executor, default_run_timeout, died_reason, execute_in_worker,
                                      time_limit_reason, worker_imports)
from benchmark.spec import RunSpec
from pruners.registry import ConfigError

#: Seconds to wait for a process to go away (a worker whose pipe broke; a killed worker to be reaped).
STOP_GRACE_S = 10.0


#: Environment variable that sets the torch threads of every run of the local executor.
THREADS_ENV = "SPARSEBENCH_THREADS"


def threads_per_worker(workers: int) -> int:
    """The most threads a run may use without oversubscribing the cores: ``cores // workers``."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def threads_from_env() -> int | None:
    """``$SPARSEBENCH_THREADS`` as a number of threads (None when unset); a bad value is a ConfigError."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    try:
        wanted = int(env)
    except ValueError:
        raise ConfigError(f"${THREADS_ENV} = {env!r} must be a whole number of threads >= 1, "
                          f"e.g. {THREADS_ENV}=1") from None
    if wanted < 1:
        raise ConfigError(f"${THREADS_ENV} = {env!r} must be >= 1, e.g. {THREADS_ENV}=1")
    return wanted


def run_threads(resources: Any = None, workers: int = 1) -> int:
    """torch intra-op threads for one run: ``$SPARSEBENCH_THREADS``, else the run's ``cpus`` resource
    (default 1; the integer part, as the Ray executor does), capped at :func:`threads_per_worker`."""
    wanted = threads_from_env()
    if wanted is None:
        wanted = int(max(1.0, float(getattr(resources, "cpus", 1.0) if resources is not None else 1.0)))
    return min(wanted, threads_per_worker(workers))


#: Modules the forkserver imports once, before it forks any worker.
WORKER_PRELOAD = ["benchmark.runner"]


def worker_context() -> Any:
    """The multiprocessing context of the pool's workers: ``forkserver`` preloading
    :data:`WORKER_PRELOAD` on Linux, else ``spawn`` (see the module docstring; on macOS forking a
    process that loaded torch's system frameworks is unsafe, which is why Python spawns there)."""
    if sys.platform.startswith("linux") and "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(WORKER_PRELOAD)  # takes effect when the server starts (once per driver)
        return ctx
    return mp.get_context("spawn")


def start_worker_server(ctx: Any | None = None) -> None:
    """Start the forkserver now without waiting for it (it imports :data:`WORKER_PRELOAD` in the
    background; the first worker start waits for that).  No-op where workers are spawned."""
    ctx = ctx or worker_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _driver_context() -> dict[str, Any]:
    """What a spawned worker would inherit from the driver now: environment, working directory, sys.path."""
    return {"environ": dict(os.environ), "cwd": os.getcwd(), "path": list(sys.path)}


def _adopt(context: Mapping[str, Any]) -> None:
    """Make this (forked) worker's environment, working directory and sys.path the driver's."""
    os.environ.clear()
    os.environ.update(context["environ"])
    os.chdir(context["cwd"])
    sys.path[:] = context["path"]


def _worker_main(conn: mpc.Connection, threads: int, imports: list[str], context: Mapping[str, Any]) -> None:
    """Worker loop: receive (spec dict, out, device, grid, threads, imports), send back ("ok", record) or an
    error.  ``threads`` and ``imports`` are the ones for the worker's start-up (each run brings its own);
    ``context`` is the driver's environment, working directory and sys.path (:func:`_driver_context`)."""
    _adopt(context)
    # Ctrl-C reaches the whole process group: only the driver handles it (it stops the workers), so a
    # worker prints no KeyboardInterrupt traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        spec_dict, out, device, grid, threads, imports = msg
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
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


def built_in_only(spec: RunSpec) -> bool:
    """True when ``spec`` uses only built-in pruner, schedule and reparams.  Only such runs execute in the
    driver's own process (``--workers 1``, no ``--run-timeout``): a plugin's run goes to a worker process,
    so a plugin that calls ``os._exit`` or crashes the interpreter is recorded and the grid goes on."""
    from pruners import PRUNERS, SCHEDULES
    from reparam import REPARAMS
    from reparam.stack import members

    try:
        origins = [PRUNERS.origin(spec.pruner)] + ([SCHEDULES.origin(spec.schedule)] if spec.schedule else []) + \
            [REPARAMS.origin(m) for m in members(str(spec.reparam)) if m and m != "none"]
    except ConfigError:
        return False
    return all(o == "built-in" for o in origins)


def worker_device(device: str, index: int) -> str:
    """The device of pool worker ``index``: with ``--device cuda`` and several GPUs the workers are
    spread round-robin (``cuda:0``, ``cuda:1``, …), so ``--workers N`` packs N / GPUs runs on each;
    one GPU, an explicit ``cuda:K`` or the CPU is used as given."""
    if device != "cuda" or not torch.cuda.is_available():
        return device
    n = torch.cuda.device_count()
    return f"cuda:{index % n}" if n > 1 else device


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Process pool on this machine (``--workers N``; ``--run-timeout S`` for a hard per-run limit)."""

    name = "local"
    cli_options = frozenset({"workers"})

    def __init__(self, workers: int = 1, device: str = "cpu", run_timeout: float | None = None, **_: Any) -> None:
        self.workers = max(1, int(workers))
        self.device = device
        self.run_timeout = float(run_timeout) if run_timeout else None
        threads_from_env()  # a bad $SPARSEBENCH_THREADS is refused before anything is written
        default_run_timeout()  # and a bad $SPARSEBENCH_RUN_TIMEOUT
        # A pool's workers start now, on a background thread (the first start waits for the forkserver's
        # imports, ~2.5 s): those imports and the driver's own preparations (the CLI loads every dataset
        # of the grid first) then overlap instead of adding up.  They are daemon processes: an executor
        # that never runs goes away with the driver.
        self._warm: list[_Worker] = []
        self._warming: threading.Thread | None = None
        if self.workers > 1 or self.run_timeout is not None:
            ctx, imports = worker_context(), worker_imports()
            start_worker_server(ctx)
            self._warming = threading.Thread(target=self._warm_up, args=(ctx, imports), daemon=True,
                                             name="sparsebench-start-workers")
            self._warming.start()
            weakref.finalize(self, _stop, self._warm)  # those still unused when the executor goes away

    def _warm_up(self, ctx: Any, imports: list[str]) -> None:
        """Start the pool's workers (on the background thread); one that fails to start is simply not
        there, and the pool starts it again (and reports the error) when it needs it."""
        try:
            for _ in range(self.workers):
                self._warm.append(self._start(ctx, 1, imports))
        except Exception:  # noqa: BLE001 - the pool's own start surfaces the error
            pass

    def run(self, specs: list[RunSpec], out: Path, grid: str,
            resources: Mapping[str, Any] | None = None) -> Iterator[dict]:
        if not specs:
            return
        resources = resources or {}
        threads = {s.run_id: run_threads(resources.get(s.run_id), self.workers) for s in specs}
        if self.workers == 1 and self.run_timeout is None and all(map(built_in_only, specs)):
            before = torch.get_num_threads()
            try:
                for spec in specs:
                    torch.set_num_threads(threads[spec.run_id])
                    yield execute_in_worker(spec.to_dict(), str(out), self.device, grid, None, [])
            finally:
                torch.set_num_threads(before)
            return
        yield from self._pool(specs, Path(out), grid, threads)

    # the pool ------------------------------------------------------------------------------------
    def _start(self, ctx: Any, threads: int, imports: list[str]) -> _Worker:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker_main, args=(child, threads, imports, _driver_context()), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent)

    def _pool(self, specs: list[RunSpec], out: Path, grid: str, threads_of: Mapping[str, int]) -> Iterator[dict]:
        from benchmark.runner import now, record_failure

        ctx = worker_context()
        n = min(self.workers, len(specs))
        threads, imports = 1, worker_imports()  # a worker's start-up; each run sets its own threads and imports
        pending = deque(specs)
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        warm = [w for w in self._warm if w.proc.is_alive()]
        _stop([w for w in self._warm if w not in warm] + warm[n:])
        self._warm.clear()
        workers: list[_Worker | None] = warm[:n] + [self._start(ctx, threads, imports) for _ in range(n - len(warm[:n]))]
        try:
            while pending or any(w is not None and w.spec is not None for w in workers):
                for i, w in enumerate(workers):
                    if w is None and pending:  # replace a worker that died or was stopped
                        w = workers[i] = self._start(ctx, threads, imports)
                    if w is not None and w.spec is None and pending:
                        w.spec = pending.popleft()
                        w.started, w.started_at = math.inf, now()   # until the worker says "started"
                        w.conn.send((w.spec.to_dict(), str(out), worker_device(self.device, i), grid,
                                     threads_of[w.spec.run_id], imports))
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
    """End the pool: kill every worker and reap it.

    An idle worker holds nothing (its last run's files and result.json were written and fsync'd before
    it answered), and asking it to exit made the driver wait for the interpreter teardown of a process
    with torch loaded (~1–2 s at the end of every grid); a busy one is killed as before (the driver is
    stopping; its run keeps its checkpoint)."""
    for w in workers:
        try:
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
