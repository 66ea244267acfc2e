"""The Ray executor: every run a Ray task (``sparsebench run GRID --executor ray [--address ADDR]``).

Each run is submitted as one task whose CPU / GPU needs come from the grid's ``[resources]`` /
``[task_resources.<task>]`` tables (default 1 CPU, 0 GPUs), so Ray places it; a run given GPUs runs
on ``cuda``.  With ``--address`` the driver joins an existing cluster (``auto``, ``ray://host:10001``
or ``host:6379``); without one it starts a local Ray instance and stops it at the end.

Workers write the run folders directly under ``--out``, which must therefore be on a filesystem
every node sees (one machine, or NFS / Lustre on a cluster); the result records come back to the
driver as task return values and the driver alone writes the store.  Faults are recorded per run
like everywhere else: a worker that dies inside a run ("worker process died"), a run past
``--run-timeout`` (cooperative timer inside the task, plus ``ray.cancel(force=True)`` as a backstop
once the run has had its limit and a grace period since the driver saw it start).  Tasks are not
retried by Ray (``max_retries=0``): ``--retry-failed`` resumes them from their checkpoints.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from benchmark.executors.base import (EXECUTORS, Executor, died_reason, execute_in_worker, seconds_from_env,
                                      time_limit_reason, worker_imports)
from benchmark.spec import RunSpec
from pruners.registry import ConfigError

#: Extra seconds after the cooperative time limit before the driver force-cancels a task.
CANCEL_GRACE_S = 30.0


START_TIMEOUT_ENV = "SPARSEBENCH_RAY_START_TIMEOUT"
START_TIMEOUT_S = 120.0


def start_timeout() -> float:
    """Seconds ``ray.init`` may take before the grid stops with a message ($SPARSEBENCH_RAY_START_TIMEOUT)."""
    return seconds_from_env(START_TIMEOUT_ENV, START_TIMEOUT_S, "300")


def _ray_task(spec_dict: dict, out: str, device: str, grid: str, threads: int, run_timeout: float | None,
              imports: list[str]) -> tuple[str, Any]:
    import torch

    torch.set_num_threads(max(1, threads))
    if not Path(out).is_dir():
        return ("config", f"output folder {out!r} is not visible on Ray node {os.uname().nodename}; put --out "
                          "on a filesystem shared by every node")
    try:
        return ("ok", execute_in_worker(spec_dict, out, device, grid, run_timeout, imports))
    except ConfigError as exc:
        return ("config", str(exc))


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed; pip install 'sparsebench[ray]'") from None
    return ray


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs as Ray tasks on an existing cluster (``address``) or a local one started here.

    Args:
        address: Ray cluster address; None starts a local instance (``num_cpus`` / ``num_gpus`` cap it).
        device: torch device for runs that ask for no GPU.
        run_timeout: per-run time limit in seconds (None: none).
        num_cpus, num_gpus: size of a local instance (ignored with ``address``).
    """

    name = "ray"
    cli_options = frozenset({"address"})

    def __init__(self, address: str | None = None, device: str = "cpu", run_timeout: float | None = None,
                 num_cpus: int | None = None, num_gpus: int | None = None, **_: Any) -> None:
        self.address = address
        self.device = device
        self.run_timeout = float(run_timeout) if run_timeout else None
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        start_timeout()   # a bad $SPARSEBENCH_RAY_START_TIMEOUT is refused before anything is written

    def _init(self, ray: Any) -> bool:
        """Connect (or start a local instance); True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs.update(num_cpus=self.num_cpus, num_gpus=self.num_gpus)
        limit = start_timeout()
        outcome: dict[str, BaseException | None] = {}

        def start() -> None:   # ray.init has no timeout of its own: bound it from outside
            try:
                ray.init(**kwargs)
                outcome["error"] = None
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc

        thread = threading.Thread(target=start, daemon=True, name="sparsebench-ray-init")
        thread.start()
        thread.join(limit)
        if "error" not in outcome:
            where = f"connect to the Ray cluster at {self.address!r}" if self.address else "start a local Ray"
            raise ConfigError(f"could not {where} within {limit:g} s; start one with 'ray start --head' and pass "
                              f"--address, or allow longer with ${START_TIMEOUT_ENV}=SECONDS")
        exc = outcome["error"]
        if isinstance(exc, ConnectionError):
            raise ConfigError(f"cannot connect to the Ray cluster at {self.address!r} ({exc}); start it with "
                              "'ray start --head' or pass the right --address") from None
        if exc is not None:
            raise exc
        return True

    def run(self, specs: list[RunSpec], out: Path, grid: str,
            resources: Mapping[str, Any] | None = None) -> Iterator[dict]:
        if not specs:
            return
        ray = import_ray()
        from ray.exceptions import (GetTimeoutError, NodeDiedError, RayTaskError, TaskCancelledError,
                                    WorkerCrashedError)
        from benchmark.runner import now, record_failure

        started_here = self._init(ray)
        remote = ray.remote(_ray_task)
        imports = worker_imports()
        refs: dict[Any, tuple[RunSpec, float, str]] = {}
        try:
            for spec in specs:
                res = (resources or {}).get(spec.run_id)
                cpus = float(getattr(res, "cpus", 1.0))
                gpus = float(getattr(res, "gpus", 0.0))
                device = "cuda" if gpus > 0 else self.device
                ref = remote.options(num_cpus=cpus, num_gpus=gpus, max_retries=0, retry_exceptions=False,
                                     name=f"sparsebench:{spec.run_id}").remote(
                    spec.to_dict(), str(Path(out).absolute()), device, grid, int(max(1, cpus)), self.run_timeout,
                    imports)
                refs[ref] = (spec, time.monotonic(), now())
            cancelled: set[Any] = set()
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec, t0, started_at = refs.pop(ref)
                    try:
                        kind, payload = ray.get(ref)
                    except TaskCancelledError:
                        yield record_failure(spec, out, time_limit_reason(self.run_timeout),
                                             device=self.device, grid=grid, started_at=started_at)
                        continue
                    except (WorkerCrashedError, NodeDiedError) as exc:
                        code = _exit_code(exc)
                        reason = died_reason(code) if code is not None else \
                            f"worker process died (exit code not reported by Ray: {type(exc).__name__})"
                        yield record_failure(spec, out, reason, device=self.device, grid=grid, started_at=started_at)
                        continue
                    except RayTaskError as exc:  # a bug outside the run (execute records run errors)
                        yield record_failure(spec, out, f"Ray task error: {str(exc).splitlines()[0][:300]}",
                                             device=self.device, grid=grid, started_at=started_at)
                        continue
                    except GetTimeoutError:  # pragma: no cover - ready refs do not time out
                        refs[ref] = (spec, t0, started_at)
                        continue
                    if kind == "config":
                        raise ConfigError(payload)
                    yield payload
                if self.run_timeout is not None:
                    self._cancel_overdue(ray, refs, cancelled)
        finally:
            for ref in refs:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            if started_here:
                ray.shutdown()

    def _cancel_overdue(self, ray: Any, refs: dict, cancelled: set) -> None:
        """Backstop for the in-task timer: force-cancel tasks running past limit + grace.  The start
        time is the task's RUNNING time from Ray's state API when available, else its submission."""
        limit = self.run_timeout + CANCEL_GRACE_S
        overdue = [r for r, (_, t0, _) in refs.items() if r not in cancelled and time.monotonic() - t0 > limit]
        if not overdue:
            return
        running = _running_since(ray)
        for r in overdue:
            spec = refs[r][0]
            since = running.get(f"sparsebench:{spec.run_id}")
            if since is not None and time.time() - since <= limit:
                continue
            if since is None and running:  # still queued behind other runs
                continue
            ray.cancel(r, force=True)
            cancelled.add(r)


def _running_since(ray: Any) -> dict[str, float]:
    """Task name → wall-clock start (s) of running sparsebench tasks (empty if the state API is absent)."""
    try:
        from ray.util.state import list_tasks

        tasks = list_tasks(filters=[("state", "=", "RUNNING")], detail=True, raise_on_missing_output=False)
    except Exception:
        return {}
    out = {}
    for t in tasks:
        name = getattr(t, "name", "") or ""
        start = getattr(t, "start_time_ms", None)
        if name.startswith("sparsebench:") and start:
            out[name] = start / 1000.0
    return out


def _exit_code(exc: BaseException) -> int | None:
    """The worker's exit code when Ray's message states it (``os._exit(3)`` → 3)."""
    import re

    m = re.search(r"exit(?:ed)? (?:with )?(?:code|status)[: ]+(-?\d+)", str(exc), re.IGNORECASE)
    return int(m.group(1)) if m else None
