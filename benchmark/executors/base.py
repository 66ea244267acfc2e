"""The executor interface shared by the local, Ray and Slurm executors (DESIGN.md, "Executors").

An executor only decides *where* runs execute.  It receives pending specs and yields one result
record per spec as runs finish; the driver (``benchmark.driver``) alone writes the store.  Every
executor runs :func:`benchmark.runner.execute` (through :func:`execute_in_worker`), so all of them
write the same run folders, resume from the same checkpoints and record faults the same way:

* a run that raises, diverges or runs out of memory is recorded by ``execute`` itself;
* a run that exceeds ``run_timeout`` seconds is recorded ``failed`` with reason
  "exceeded the per-run time limit of N s";
* a worker process that dies inside a run (``os._exit``, a signal, the OOM killer) is recorded
  ``failed`` with reason "worker process died (exit code …)" by the executor, which then goes on
  with the other runs.

Adding an executor (e.g. Dask) is one class registered with ``@EXECUTORS.register("name")`` that
implements :meth:`Executor.run` and lists the ``sparsebench run`` options it accepts in
``cli_options`` (the CLI refuses an executor-specific option given to another executor).

Plugins reach workers through one channel: the driver's plugin targets (``--plugin``, recorded in
``$SPARSEBENCH_PLUGINS`` by :func:`pruners.plugins.load_plugins`).  Local workers inherit the variable;
Ray tasks and Slurm jobs get the same list as an argument (:func:`worker_imports`) and load it before
running a spec, so pruners / reparams registered by plugins in the driver are registered in every
worker too.  Installed entry points are discovered by every process on its first registry lookup.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

from benchmark.spec import RunSpec
from pruners.registry import ConfigError, Registry

EXECUTORS: Registry[type["Executor"]] = Registry("executor")



class Executor(ABC):
    """Runs specs somewhere and yields their result records as they finish.

    Constructor keyword arguments are the executor's options; every executor accepts ``device``
    and ``run_timeout`` (seconds, None = no limit).  ``cli_options`` names the ``sparsebench run``
    flags (argparse dests) that only make sense for this executor.
    """

    name: ClassVar[str] = ""
    cli_options: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def run(self, specs: list[RunSpec], out: Path, grid: str,
            resources: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Execute ``specs`` writing run folders under ``out``; yield one record per spec.

        ``resources`` maps run ids to :class:`benchmark.grid.Resources` (CPUs / GPUs per run, from
        the grid's ``[resources]`` tables); executors that schedule by resources use it.
        """

    run_timeout: float | None = None

    def detached(self) -> bool:
        """True when :meth:`run` submitted the runs and returned without waiting (Slurm --detach)."""
        return False

    def limit_runs(self, seconds: float) -> None:
        """Set the per-run time limit after construction (a grid's ``run_timeout``, read after the
        executor started its workers; ``--run-timeout`` given on the command line takes precedence)."""
        self.run_timeout = float(seconds)


def worker_imports() -> list[str]:
    """The driver's plugin targets, for workers that do not inherit its environment (Ray, Slurm)."""
    from pruners.plugins import env_targets

    return env_targets()


def load_worker_imports(names: list[str] | None = None) -> None:
    """Make a worker's plugins the driver's: load its targets (each once: ``pruners.plugins.load_plugin``
    keys files by absolute path and modules by name) and unload any other plugin the process holds — a
    forked worker inherits what its forkserver discovered from the environment it started with, which
    may list an earlier plugin of the same name (a driver that unloaded it, or a new version of it)."""
    from pruners.plugins import load_plugins, loaded_plugins, resolve, unload_plugin

    names = names if names is not None else worker_imports()
    keep = {resolve(n)[0] for n in names}
    for plugin in loaded_plugins():
        if plugin.kind != "entry point" and plugin.key not in keep:   # installed packages stay
            unload_plugin(plugin.key)
    load_plugins(names)


class RunTimeLimit(BaseException):
    """Raised inside a run by the per-run timer (a BaseException, so the runner does not record it
    as an ordinary failure: :func:`execute_in_worker` records it with the time-limit reason)."""


DEFAULT_RUN_TIMEOUT_ENV = "SPARSEBENCH_RUN_TIMEOUT"
DEFAULT_RUN_TIMEOUT_S = 7 * 24 * 3600.0
"""Without ``--run-timeout``, a run may take 7 days (more than any recipe here needs: ImageNet ResNet-50
takes 2–3 on one GPU) before it is recorded as a timeout; ``$SPARSEBENCH_RUN_TIMEOUT`` changes it."""


def seconds_from_env(var: str, default: float, example: str) -> float:
    """A positive number of seconds from ``$var`` (``default`` when unset); ConfigError naming the
    variable and an ``example`` value otherwise."""
    text = os.environ.get(var, "")
    try:
        value = float(text) if text else default
    except ValueError:
        raise ConfigError(f"${var}={text!r} is not a number of seconds; use e.g. {example}") from None
    if not value > 0:
        raise ConfigError(f"${var}={text!r} must be positive; use e.g. {example}")
    return value


def default_run_timeout() -> float:
    """The generous per-run limit used when none is given (cooperative: checked in the run's process)."""
    return seconds_from_env(DEFAULT_RUN_TIMEOUT_ENV, DEFAULT_RUN_TIMEOUT_S, "86400")


def time_limit_reason(seconds: float) -> str:
    return f"timeout: exceeded the per-run time limit of {seconds:g} s"


def died_reason(exitcode: int | None) -> str:
    """The reason recorded for a run whose worker process died."""
    if exitcode is None:
        return "worker process died (exit code unknown)"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = f"signal {-exitcode}"
        hint = ", e.g. by the out-of-memory killer" if sig == "SIGKILL" else ""
        return f"worker process died (exit code {exitcode}: killed by {sig}{hint})"
    return f"worker process died (exit code {exitcode})"


#: ``status`` of the record a worker returns for a run that another process holds (see
#: :mod:`benchmark.claims`); never written to a run folder or the store: the driver waits for that run.
CLAIMED = "claimed"
#: Key set on the record of a run that another driver finished after this driver looked.
ELSEWHERE = "finished_elsewhere"


def claimed_record(spec: RunSpec, holder: str) -> dict:
    return {"run_id": spec.run_id, "status": CLAIMED, "reason": f"claimed by {holder}"}


def execute_in_worker(spec_dict: dict, out: str, device: str, grid: str,
                      run_timeout: float | None = None, imports: list[str] | None = None) -> dict:
    """What a worker runs for one spec: claim the run (:mod:`benchmark.claims`), imports, then
    :func:`benchmark.runner.execute` under a cooperative per-run timer (SIGALRM; only in a process's
    main thread).  A run past its limit is recorded ``failed`` with a reason that starts "timeout:"; its
    checkpoint is kept.

    A run claimed by another live process returns a ``claimed`` record (the driver waits for it); a
    run whose ``result.json`` appeared since the driver looked returns that result marked
    :data:`ELSEWHERE`.  A retried failed run reaches here without its result.json (the driver moves it
    aside first, :func:`benchmark.driver.run_grid`)."""
    from benchmark.claims import holder_label, try_claim
    from benchmark.runfolder import read_result, run_dir
    from benchmark.runner import RunLog, execute, now, record_failure

    load_worker_imports(imports)  # first: the spec may name a plugin's pruner
    spec = RunSpec.from_dict(spec_dict)
    folder = run_dir(Path(out), spec.run_id)
    claim = try_claim(folder, log=RunLog(folder / "log.txt"))
    if claim is None:
        return claimed_record(spec, holder_label(folder))
    try:
        done = read_result(folder)
        if done is not None:
            return {**done, ELSEWHERE: True}
        run_timeout = run_timeout or default_run_timeout()   # a hang never blocks a grid forever
        use_alarm = threading.current_thread() is threading.main_thread()
        started, t0 = now(), time.perf_counter()
        beat = _Heartbeat(claim)
        if use_alarm:
            def _expired(signum, frame):  # noqa: ARG001
                raise RunTimeLimit()

            previous = signal.signal(signal.SIGALRM, _expired)
            signal.setitimer(signal.ITIMER_REAL, float(run_timeout))
        try:
            return execute(spec, out, device=device, grid=grid)
        except RunTimeLimit:
            return record_failure(spec, out, time_limit_reason(float(run_timeout)), device=device, grid=grid,
                                  started_at=started, total_time_s=time.perf_counter() - t0)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            beat.stop()
    finally:
        claim.release()


class _Heartbeat:
    """Refreshes the run's claim (its modification time is the heartbeat, :mod:`benchmark.claims`) every
    HEARTBEAT_S seconds from a daemon thread while the run executes, so other drivers and
    ``sparsebench status`` tell a running run from one whose worker is gone."""

    def __init__(self, claim) -> None:
        from benchmark.status import HEARTBEAT_S

        self.claim, self.period = claim, HEARTBEAT_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.claim.touch()
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
