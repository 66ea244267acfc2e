"""The Slurm executor: runs as submitit job arrays (``sparsebench run GRID --executor slurm --partition P
--time 2:00:00 [--gpus-per-run 1] [--detach]``).

Runs with equal resources (the grid's ``[resources]`` / ``[task_resources.<task>]``; ``--gpus-per-run``
overrides the GPUs) go into one job array, one array task per run.  Every task runs
:func:`benchmark.executors.base.execute_in_worker`, writing its run folder under ``--out``, which must
be on the cluster's shared filesystem; submitit's own logs and pickles go to ``<out>/slurm/``.  The
driver waits for the arrays and records the results in the store as jobs finish, or with
``--detach`` records the submitted job ids in ``<out>/slurm/jobs.jsonl`` and returns at once;
``sparsebench collect OUT`` later ingests the finished run folders and records jobs that ended
without a result (Slurm's TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, CANCELLED …) as failed runs.

``--slurm-cluster local`` runs the same arrays through submitit's local executor (processes on this
machine): the real submission path, without Slurm — for debugging a grid and for the tests.
"""
from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Mapping

from benchmark.executors.base import EXECUTORS, Executor, execute_in_worker, time_limit_reason, worker_imports
from benchmark.runfolder import read_result, run_dir
from benchmark.spec import RunSpec
from pruners.registry import ConfigError

JOBS_FILE = "jobs.jsonl"
#: Slurm states that end a job; those without a result.json become failed runs with this reason.
END_STATES = {"TIMEOUT": "exceeded the Slurm time limit (--time)", "OUT_OF_MEMORY": "out of memory",
              "NODE_FAIL": "the node running it failed", "CANCELLED": "the Slurm job was cancelled",
              "FAILED": "worker process died", "BOOT_FAIL": "the node failed to boot",
              "PREEMPTED": "the Slurm job was preempted", "DEADLINE": "the Slurm job reached its deadline"}


def parse_time(text: str | int | None) -> int | None:
    """Slurm ``--time`` → minutes: ``90``, ``1:30:00``, ``2-00:00:00``, ``1-12``; ConfigError otherwise."""
    if text is None:
        return None
    s = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?", s)
    if not m or (m.group(3) is not None and m.group(4) is None and m.group(1) is None):
        # "MM:SS" is Slurm's minutes:seconds; accept it too
        m2 = re.fullmatch(r"(\d+):(\d{1,2})", s)
        if m2:
            return max(1, int(m2.group(1)) + math.ceil(int(m2.group(2)) / 60))
        raise ConfigError(f"--time {s!r} is not a Slurm time limit; use minutes (90), H:MM:SS (1:30:00) "
                          "or D-HH:MM:SS (2-00:00:00)")
    days, first, second, third = m.groups()
    if days is None and second is None:
        minutes = int(first)
    elif days is not None and second is None:
        minutes = int(days) * 1440 + int(first) * 60
    else:
        minutes = (int(days or 0) * 1440 + int(first) * 60 + int(second or 0)
                   + math.ceil(int(third or 0) / 60))
    if minutes <= 0:
        raise ConfigError(f"--time {s!r} must be longer than zero; e.g. --time 1:00:00")
    return minutes


def _slurm_job(spec_dict: dict, out: str, device: str, grid: str, run_timeout: float | None,
               imports: list[str], threads: int) -> dict:
    import torch

    torch.set_num_threads(max(1, threads))
    return execute_in_worker(spec_dict, out, device, grid, run_timeout, imports)


def import_submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor slurm needs submitit, which is not installed; "
                          "pip install 'sparsebench[slurm]'") from None
    return submitit


def slurm_folder(out: Path) -> Path:
    return Path(out) / "slurm"


@EXECUTORS.register("slurm")
class SlurmExecutor(Executor):
    """Job arrays through submitit.

    Args:
        partition: Slurm partition (``--partition``).
        time: job time limit (``--time``: minutes or [D-]H:MM:SS; default 60 minutes).
        gpus_per_run: GPUs per run, overriding the grid's resources (``--gpus-per-run``).
        detach: submit and return without waiting (``--detach``; ``sparsebench collect`` later).
        slurm_cluster: ``slurm`` (default) or ``local`` (submitit's local executor).
        device, run_timeout: as for every executor.
        poll_s: seconds between job-state polls while waiting.
    """

    name = "slurm"
    cli_options = frozenset({"partition", "time", "gpus_per_run", "detach", "slurm_cluster"})

    def __init__(self, partition: str | None = None, time: str | int | None = None,
                 gpus_per_run: int | None = None, detach: bool = False, slurm_cluster: str | None = None,
                 device: str = "cpu", run_timeout: float | None = None, poll_s: float = 1.0, **_: Any) -> None:
        self.partition = partition
        self.time_min = parse_time(time) or 60
        self.gpus_per_run = gpus_per_run
        self.detach = bool(detach)
        self.cluster = slurm_cluster or "slurm"
        if self.cluster not in ("slurm", "local"):
            raise ConfigError(f"--slurm-cluster {self.cluster!r} is not known; use slurm or local")
        self.device = device
        self.run_timeout = float(run_timeout) if run_timeout else None
        self.poll_s = poll_s

    def detached(self) -> bool:
        return self.detach

    def submit(self, specs: list[RunSpec], out: Path, grid: str,
               resources: Mapping[str, Any] | None = None) -> list[tuple[RunSpec, Any]]:
        """Submit one job array per resource shape; returns (spec, job) pairs (also in jobs.jsonl)."""
        submitit = import_submitit()
        out = Path(out).absolute()
        groups: dict[tuple[float, float], list[RunSpec]] = defaultdict(list)
        for spec in specs:
            res = (resources or {}).get(spec.run_id)
            cpus = float(getattr(res, "cpus", 1.0))
            gpus = float(self.gpus_per_run if self.gpus_per_run is not None else getattr(res, "gpus", 0.0))
            groups[(cpus, gpus)].append(spec)
        imports = worker_imports()
        pairs: list[tuple[RunSpec, Any]] = []
        for (cpus, gpus), group in groups.items():
            ex = submitit.AutoExecutor(folder=slurm_folder(out) / "%j", cluster=self.cluster)
            params: dict[str, Any] = dict(timeout_min=self.time_min, cpus_per_task=max(1, math.ceil(cpus)),
                                          gpus_per_node=int(math.ceil(gpus)), name=f"sparsebench-{grid or 'grid'}",
                                          slurm_array_parallelism=len(group))
            if self.partition:
                params["slurm_partition"] = self.partition
            ex.update_parameters(**params)
            device = "cuda" if gpus > 0 else self.device
            n = len(group)
            try:
                jobs = ex.map_array(_slurm_job, [s.to_dict() for s in group], [str(out)] * n, [device] * n,
                                    [grid] * n, [self.run_timeout] * n, [imports] * n,
                                    [max(1, math.ceil(cpus))] * n)
            except Exception as exc:  # sbatch refused (bad partition, no Slurm here, ...)
                raise ConfigError(f"Slurm submission failed: {str(exc).strip().splitlines()[-1][:300]}; "
                                  "check --partition / --time (or use --slurm-cluster local)") from None
            pairs += list(zip(group, jobs))
        folder = slurm_folder(out)
        folder.mkdir(parents=True, exist_ok=True)
        from benchmark.runner import now

        with open(folder / JOBS_FILE, "a", encoding="utf-8") as fh:
            for spec, job in pairs:
                fh.write(json.dumps({"job_id": str(job.job_id), "run_id": spec.run_id, "cluster": self.cluster,
                                     "grid": grid, "submitted_at": now()}) + "\n")
        return pairs

    def run(self, specs: list[RunSpec], out: Path, grid: str,
            resources: Mapping[str, Any] | None = None) -> Iterator[dict]:
        if not specs:
            return
        pairs = self.submit(specs, out, grid, resources)
        if self.detach:
            return
        waiting = dict(enumerate(pairs))
        while waiting:
            for key in list(waiting):
                spec, job = waiting[key]
                if not job.done():
                    continue
                del waiting[key]
                yield self._outcome(spec, job, out, grid)
            if waiting:
                time.sleep(self.poll_s)

    def _outcome(self, spec: RunSpec, job: Any, out: Path, grid: str) -> dict:
        from benchmark.runner import record_failure

        try:
            return job.result()
        except Exception as exc:
            rec = read_result(run_dir(out, spec.run_id))
            if rec is not None:  # the run recorded itself before the job failed afterwards
                return rec
            text = str(exc)
            if "ConfigError" in text or "OutputError" in text:
                line = [ln for ln in text.splitlines() if "Error: " in ln]
                raise ConfigError(line[-1].split("Error: ", 1)[1] if line else text.splitlines()[0]) from None
            return record_failure(spec, out, job_failure_reason(job, self.run_timeout), device=self.device, grid=grid)


def job_failure_reason(job: Any, run_timeout: float | None = None) -> str:
    """Why a job ended without a result (its Slurm / local state)."""
    try:
        state = str(job.state).split()[0].upper()
    except Exception:
        state = "UNKNOWN"
    base = END_STATES.get(state, "worker process died")
    if state == "TIMEOUT" and run_timeout:
        base = time_limit_reason(run_timeout)
    return f"{base} (job {job.job_id} ended {state})"


def collect(out: Path) -> dict[str, int]:
    """Ingest finished run folders into the store; record jobs that ended without a result as failed.

    Returns counts: ``ingested`` (new rows), ``failed`` (jobs recorded as failed now), ``waiting``
    (jobs still queued or running, or whose fate is unknown).
    """
    from benchmark.claims import read_claim, stale_reason
    from benchmark.runner import record_failure
    from benchmark.store import Store

    out = Path(out)
    store = Store(out)
    counts = {"ingested": store.ingest_folders(), "failed": 0, "waiting": 0}
    jobs_file = slurm_folder(out) / JOBS_FILE
    if not jobs_file.is_file():
        return counts
    latest: dict[str, dict] = {}
    for line in jobs_file.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        latest[entry["run_id"]] = entry  # a resubmitted run: its last job counts
    new = []
    for run_id, entry in sorted(latest.items()):
        folder = run_dir(out, run_id)
        if read_result(folder) is not None:
            continue
        if read_claim(folder) is not None and stale_reason(folder) is None:
            counts["waiting"] += 1  # another driver or job holds the run (its job found it claimed)
            continue
        state = _job_state(out, entry)
        if state in END_STATES or state == "COMPLETED":
            try:
                spec = RunSpec.from_dict(json.loads((folder / "spec.json").read_text(encoding="utf-8")))
            except (OSError, ValueError, ConfigError):
                counts["waiting"] += 1
                continue
            reason = END_STATES.get(state, "the job ended without a result")
            new.append(record_failure(spec, out, f"{reason} (job {entry['job_id']} ended {state})",
                                      grid=entry.get("grid", "")))
        else:
            counts["waiting"] += 1
    counts["failed"] = store.upsert(new)
    return counts


def _job_state(out: Path, entry: dict) -> str:
    """Slurm's state of a submitted job (sacct through submitit), or a local job's from its pickles."""
    folder = slurm_folder(out) / entry["job_id"].split("_")[0]
    if entry.get("cluster", "slurm") == "slurm":
        try:
            submitit = import_submitit()
            return str(submitit.SlurmJob(folder=folder, job_id=entry["job_id"]).state).split()[0].upper()
        except Exception:
            return "UNKNOWN"
    result = folder / f"{entry['job_id']}_0_result.pkl"
    return "FAILED" if result.exists() else "UNKNOWN"
