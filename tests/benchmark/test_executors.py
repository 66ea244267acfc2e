"""Executors: one interface (local, Ray, Slurm via submitit); every executor writes the same run
folders and the driver alone writes the store.  Ray tests start a local Ray (num_cpus=2); Slurm
tests go through submitit's local executor, i.e. the real job-array submission path."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.driver import run_grid
from benchmark.executors import EXECUTORS, Executor, LocalExecutor
from benchmark.executors.slurm import parse_time
from benchmark.grid import Resources, expand_grid
from benchmark.runfolder import iter_results
from benchmark.store import Store
from pruners.registry import ConfigError
from grid_kill import kill_after_results

ROOT = Path(__file__).parents[2]


def _grid(entries, sparsities=(0.5,), **extra):
    raw = {"name": "ex", "tasks": ["digits-mlp"], "sparsities": list(sparsities), "seeds": [0],
           "recipe": {"epochs": 1, "max_train_batches": 4},
           "pruners": [{"name": "test-faulty", "args": a} for a in entries], **extra}
    return expand_grid(raw)


def _modes(out):
    return {r["pruner_args"]["mode"]: r for r in iter_results(out)}


def test_registry_has_three_executors_sharing_one_interface():
    assert {"local", "ray", "slurm"} <= set(EXECUTORS.names())
    for name in ("local", "ray", "slurm"):
        cls = EXECUTORS.get(name)
        assert issubclass(cls, Executor) and cls.run is not Executor.run
    # executor-specific CLI options are disjoint, so each one has a single owner
    owners = [o for n in ("local", "ray", "slurm") for o in EXECUTORS.get(n).cli_options]
    assert len(owners) == len(set(owners))


def test_grid_resources_per_task(faulty):
    g = _grid([{"mode": "none"}], resources={"cpus": 2}, task_resources={"digits-mlp": {"gpus": 0.5}})
    assert list(g.resources.values()) == [Resources(cpus=2.0, gpus=0.5)]
    assert _grid([{"mode": "none"}]).resources[g.specs[0].run_id] == Resources(1.0, 0.0)
    # resources are not part of the run's identity
    assert g.specs[0].run_id == _grid([{"mode": "none"}]).specs[0].run_id


def test_run_threads_follow_the_grid_not_the_worker_count(monkeypatch):
    """A run's torch threads: its cpus resource (default 1) or $SPARSEBENCH_THREADS, capped so the
    workers never oversubscribe the cores; never cores // workers by default."""
    from benchmark.executors.local import THREADS_ENV, run_threads, threads_per_worker

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert run_threads() == run_threads(None, 1) == run_threads(Resources(1.0, 0.0), 4) == 1
    assert run_threads(Resources(2.0, 0.0), 1) == 2 and run_threads(Resources(2.5, 0.0), 2) == 2
    assert run_threads(Resources(16.0, 0.0), 2) == threads_per_worker(2) == 4
    monkeypatch.setenv(THREADS_ENV, "3")
    assert run_threads(None, 1) == run_threads(Resources(1.0, 0.0), 2) == 3
    assert run_threads(None, 4) == 2   # capped at 8 cores // 4 workers
    for bad in ("0", "two"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ConfigError, match=THREADS_ENV):
            run_threads()


def test_one_and_two_workers_give_identical_results(tmp_path):
    """The same grid with --workers 1 (in this process) and 2 (spawned workers): identical masks,
    weights and metrics.  LeNet-5 is a model whose weights depend on torch's thread count on CPU, so
    this holds because a run's thread count no longer depends on the number of workers."""
    from benchmark.tasks import load_data

    try:
        load_data("fashion-mnist")
    except Exception as exc:  # noqa: BLE001 - the dataset is an optional system package
        pytest.skip(f"fashion-mnist not available: {exc}")
    raw = {"name": "det", "tasks": ["fmnist-lenet5"], "sparsities": [0.9], "seeds": [0, 1],
           "recipe": {"epochs": 1, "max_train_batches": 12},
           "pruners": [{"name": "snip"}, {"name": "random", "allocation": "uniform"}]}
    g = expand_grid(raw)
    for workers in (1, 2):
        report = run_grid(g.specs, tmp_path / f"w{workers}", LocalExecutor(workers=workers), grid="det",
                          progress=False, echo=lambda line: None, resources=g.resources)
        assert report.status == {"ok": len(g.specs)}
    import torch

    def strip(rec):
        drop = ("time", "started_at", "finished_at", "mask_time_fb")
        out = {k: v for k, v in rec.items() if not any(d in k for d in drop)}
        # masks.pt, model.pt and spec.json hash identically; metrics.jsonl holds epoch timings
        out["files"] = {k: v for k, v in rec.get("files", {}).items() if k != "metrics.jsonl"}
        return out

    ones = {r["run_id"]: r for r in iter_results(tmp_path / "w1")}
    twos = {r["run_id"]: r for r in iter_results(tmp_path / "w2")}
    assert ones.keys() == twos.keys() and len(ones) == len(g.specs)
    for rid in ones:
        assert strip(ones[rid]) == strip(twos[rid]), rid
        for name in ("masks.pt", "model.pt"):
            a = torch.load(tmp_path / "w1" / "runs" / rid / name)
            b = torch.load(tmp_path / "w2" / "runs" / rid / name)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (rid, name)
        lines = [[{k: v for k, v in json.loads(line).items() if "time" not in k}
                  for line in (tmp_path / w / "runs" / rid / "metrics.jsonl").read_text().splitlines()]
                 for w in ("w1", "w2")]
        assert lines[0] == lines[1], rid


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880), ("1-12", 2160),
                                           ("5:30", 6)])
def test_slurm_time_formats(text, minutes):
    assert parse_time(text) == minutes


def test_slurm_time_refuses_garbage():
    with pytest.raises(ConfigError, match="is not a Slurm time limit"):
        parse_time("an hour")


# --------------------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sparsebench[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_runs_a_grid_and_records_faults(tmp_path, faulty, ray_cluster):
    from benchmark.executors.ray import RayExecutor

    marker = tmp_path / "die"
    marker.write_text("")
    grid = _grid([{"mode": "none"}, {"mode": "raise"}, {"mode": "exit", "marker": str(marker)}],
                 resources={"cpus": 1, "gpus": 0})
    out = tmp_path / "out"
    report = run_grid(grid.specs, out, RayExecutor(), grid="ex", progress=False, echo=lambda line: None,
                      resources=grid.resources)
    assert report.ran == 3 and report.status == {"ok": 1, "failed": 2}
    recs = _modes(out)
    assert recs["none"]["status"] == "ok" and recs["none"]["final_top1"] is not None
    assert recs["raise"]["reason"] == "ValueError: scores exploded on purpose"
    assert recs["exit"]["reason"].startswith("worker process died")
    assert Store(out).check() == []
    # the same runs through the local executor give the same result (run = pure function of spec)
    local_out = tmp_path / "local"
    good = [s for s in grid.specs if s.pruner_args["mode"] == "none"]
    run_grid(good, local_out, LocalExecutor(), grid="ex", progress=False, echo=lambda line: None)
    assert _modes(local_out)["none"]["final_top1"] == recs["none"]["final_top1"]


def test_sigkill_of_a_ray_driver_then_rerun_completes(tmp_path, ray_cluster):
    """The driver joins the running Ray (--address); SIGKILL it mid-grid; the rerun completes the
    grid with every run exactly once."""
    address = ray_cluster.get_runtime_context().gcs_address
    grid = tmp_path / "g.toml"
    # 12 short runs on 2 Ray CPUs: however fast a run is, the first result lands long before the last
    grid.write_text('name = "t"\ntasks = ["digits-mlp"]\nsparsities = [0.2, 0.3, 0.5, 0.7, 0.8, 0.9]\n'
                    'seeds = [0, 1]\n[recipe]\nepochs = 1\nmax_train_batches = 6\n[[pruners]]\nname = "random"\n')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmark", "run", str(grid), "--out", str(out), "--no-progress",
           "--executor", "ray", "--address", address]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done_before = kill_after_results(cmd, out, env, results=1, within=240)
    assert 1 <= done_before < 12, "the kill must land in the middle of the grid"
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert len(list(out.glob("runs/*/result.json"))) == 12
    con = sqlite3.connect(out / "results.db")
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
    con.close()
    assert len(ids) == len(set(ids)) == 12
    assert Store(out).check() == []
    print(f"ray SIGKILL: {done_before} of 12 runs finished before the kill")


# ------------------------------------------------------------------------------------------- Slurm
def test_slurm_job_array_records_results_and_a_dead_job(tmp_path, faulty, capsys):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'sparsebench[slurm]')")
    marker = tmp_path / "die"
    marker.write_text("")
    grid = tmp_path / "g.toml"
    grid.write_text('name = "s"\ntasks = ["digits-mlp"]\nsparsities = [0.5]\n[recipe]\nepochs = 1\n'
                    'max_train_batches = 4\n[[pruners]]\nname = "test-faulty"\n[[pruners]]\nname = "test-faulty"\n'
                    f'args = {{ mode = "exit", marker = "{marker}" }}\n')
    out = tmp_path / "out"
    rc = main(["run", str(grid), "--out", str(out), "--no-progress", "--executor", "slurm",
               "--slurm-cluster", "local", "--time", "10"])
    assert rc == 0
    recs = _modes(out)
    assert recs["none"]["status"] == "ok"
    assert recs["exit"]["status"] == "failed" and recs["exit"]["reason"].startswith("worker process died (job ")
    jobs = [json.loads(line) for line in (out / "slurm" / "jobs.jsonl").read_text().splitlines()]
    assert sorted(j["run_id"] for j in jobs) == sorted(r["run_id"] for r in recs.values())
    assert Store(out).check() == []


def test_slurm_detach_then_collect(tmp_path, capsys):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'sparsebench[slurm]')")
    grid = tmp_path / "g.toml"
    grid.write_text('name = "d"\ntasks = ["digits-mlp"]\nsparsities = [0.5, 0.9]\n[recipe]\nepochs = 1\n'
                    'max_train_batches = 4\n[[pruners]]\nname = "random"\n')
    out = tmp_path / "out"
    rc = main(["run", str(grid), "--out", str(out), "--no-progress", "--executor", "slurm",
               "--slurm-cluster", "local", "--detach"])
    text = capsys.readouterr().out
    assert rc == 0 and "submitted 2" in text and f"sparsebench collect {out}" in text
    assert Store(out).rows() == []          # the driver did not wait
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("runs/*/result.json"))) < 2:
        time.sleep(0.2)
    assert main(["collect", str(out)]) == 0
    assert "2 finished run(s) added to the store" in capsys.readouterr().out
    assert len(Store(out).rows()) == 2 and Store(out).check() == []
    # a rerun finds everything done
    assert main(["run", str(grid), "--out", str(out), "--no-progress"]) == 0
    assert "2 already done, ran 0" in capsys.readouterr().out


def _report_context(conn, context):
    """A worker body: adopt the driver's context as the pool's workers do, then report what it sees."""
    from benchmark.executors.local import _adopt

    _adopt(context)
    conn.send((os.environ.get("SPARSEBENCH_TEST_MARK"), os.getcwd(), sys.path[:2]))
    conn.close()


def test_forked_worker_takes_the_drivers_environment_directory_and_path_at_its_start(tmp_path, monkeypatch):
    """Workers are forked from a server started earlier (benchmark.executors.local.worker_context); a
    variable set, a directory changed or a path added in the driver after that must still reach them,
    as they would reach a spawned worker."""
    from benchmark.executors import local

    ctx = local.worker_context()
    local.start_worker_server(ctx)
    monkeypatch.setenv("SPARSEBENCH_TEST_MARK", "set after the server started")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "extra"))
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_report_context, args=(child, local._driver_context()))
    proc.start()
    child.close()
    got = parent.recv()
    proc.join(60)
    assert proc.exitcode == 0
    assert got == ("set after the server started", str(tmp_path), [str(tmp_path / "extra"), *sys.path[1:2]])


def test_workers_are_spread_over_the_gpus_round_robin(monkeypatch):
    """Issue 22 (2), CPU-simulated: --device cuda with 3 GPUs puts worker i on cuda:(i mod 3); one GPU, an
    explicit cuda:K and the CPU are used as given."""
    import torch

    from benchmark.executors.local import worker_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert [worker_device("cuda", i) for i in range(5)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert worker_device("cuda:1", 4) == "cuda:1" and worker_device("cpu", 2) == "cpu"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert worker_device("cuda", 5) == "cuda"


def test_a_ray_start_that_hangs_stops_with_a_message_within_its_bound(monkeypatch):
    """Issue 23: `--executor ray` without --address once took 482 s to fail under load; ray.init is now
    bounded ($SPARSEBENCH_RAY_START_TIMEOUT) and a hang is one line naming the fix."""
    import threading
    import time
    from types import SimpleNamespace

    from benchmark.executors.ray import START_TIMEOUT_ENV, RayExecutor
    from pruners.registry import ConfigError

    release = threading.Event()
    fake = SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: release.wait(30))
    monkeypatch.setenv(START_TIMEOUT_ENV, "0.3")
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"could not start a local Ray within 0.3 s; start one with 'ray start "
                                          r"--head' and pass --address"):
        RayExecutor()._init(fake)
    assert time.monotonic() - t0 < 5
    release.set()
    monkeypatch.setenv(START_TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="is not a number of seconds"):
        RayExecutor()._init(fake)


def test_collect_waits_for_a_run_another_driver_has_claimed(tmp_path, monkeypatch):
    """Issue 23 (Slurm, claimed path): a job whose run is held by a live claim (another driver or job) is
    'waiting' — never recorded failed, whatever its own job's state; once the claim is stale and the job
    ended without a result, collect records it failed."""
    import json as _json
    import socket

    import benchmark.executors.slurm as slurm
    from benchmark.claims import CLAIM
    from benchmark.runfolder import run_dir
    from benchmark.spec import make_spec

    out = tmp_path / "out"
    spec = make_spec("digits-mlp", "random", 0.5, recipe={"epochs": 1, "max_train_batches": 2})
    folder = run_dir(out, spec.run_id)
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(_json.dumps(spec.to_dict()))
    (out / "slurm").mkdir(parents=True)
    (out / "slurm" / slurm.JOBS_FILE).write_text(_json.dumps({"run_id": spec.run_id, "job_id": "7_0",
                                                              "cluster": "local", "grid": "g"}) + "\n")
    monkeypatch.setattr(slurm, "_job_state", lambda out, entry: "FAILED")
    (folder / CLAIM).write_text(_json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": "t"}))
    assert slurm.collect(out) == {"ingested": 0, "failed": 0, "waiting": 1}
    (folder / CLAIM).unlink()
    counts = slurm.collect(out)
    assert counts["failed"] == 1 and counts["waiting"] == 0


def test_a_hanging_run_without_run_timeout_meets_the_default_limit(tmp_path, faulty, monkeypatch, capsys):
    """Issue 23 (3): without --run-timeout a run still has a (generous, default 7-day) limit, recorded as a
    timeout; $SPARSEBENCH_RUN_TIMEOUT shortens it here; the grid goes on."""
    from benchmark.executors.base import DEFAULT_RUN_TIMEOUT_ENV, DEFAULT_RUN_TIMEOUT_S

    assert DEFAULT_RUN_TIMEOUT_S == 7 * 24 * 3600
    monkeypatch.setenv(DEFAULT_RUN_TIMEOUT_ENV, "20")
    grid = tmp_path / "g.toml"
    grid.write_text('name = "t"\ntasks = ["digits-mlp"]\nsparsities = [0.5]\n[recipe]\nepochs = 1\n'
                    'max_train_batches = 2\n[[pruners]]\nname = "test-faulty"\n[[pruners]]\nname = "test-faulty"\n'
                    'args = { mode = "sleep" }\n')
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--no-progress"]) == 0
    recs = _modes(out)
    assert recs["none"]["status"] == "ok"
    assert recs["sleep"]["status"] == "failed"
    assert recs["sleep"]["reason"] == "timeout: exceeded the per-run time limit of 20 s"


def test_the_grid_sets_the_per_run_time_limit_and_the_flag_overrides_it(tmp_path, faulty):
    """Issue 23 (3): ``run_timeout = N`` in a grid limits each of its runs (a hanging plugin is recorded as a
    timeout and the grid goes on); ``--run-timeout`` replaces the grid's value; a bad value is refused."""
    from benchmark.grid import load_grid

    grid = tmp_path / "g.toml"
    grid.write_text('name = "t"\nrun_timeout = 4\ntasks = ["digits-mlp"]\nsparsities = [0.5]\n[recipe]\nepochs = 1\n'
                    'max_train_batches = 2\n[[pruners]]\nname = "test-faulty"\n[[pruners]]\nname = "test-faulty"\n'
                    'args = { mode = "sleep" }\n')
    assert load_grid(grid).run_timeout == 4.0
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--no-progress"]) == 0
    recs = _modes(out)
    assert recs["none"]["status"] == "ok"
    assert recs["sleep"]["reason"] == "timeout: exceeded the per-run time limit of 4 s"
    out2 = tmp_path / "out2"
    assert main(["run", str(grid), "--out", str(out2), "--no-progress", "--run-timeout", "3"]) == 0
    assert _modes(out2)["sleep"]["reason"] == "timeout: exceeded the per-run time limit of 3 s"
    text = grid.read_text()
    for bad in ("0", "-1", '"1h"', "true"):
        grid.write_text(text.replace("run_timeout = 4", f"run_timeout = {bad}"))
        with pytest.raises(ConfigError, match="run_timeout = .* must be a positive number of seconds"):
            load_grid(grid)


def test_a_plugin_that_calls_os_exit_with_one_worker_is_recorded_and_the_grid_goes_on(tmp_path, faulty):
    """Issue 23 (3): with --workers 1 and no --run-timeout, built-in runs execute in the driver's process,
    but a plugin's run goes to a worker process: its os._exit ends that worker, not the driver."""
    from benchmark.executors.local import built_in_only
    from benchmark.spec import make_spec

    assert built_in_only(make_spec("digits-mlp", "random", 0.5))
    assert not built_in_only(make_spec("digits-mlp", "test-faulty", 0.5))
    marker = tmp_path / "die"
    marker.write_text("")
    grid = tmp_path / "g.toml"
    grid.write_text('name = "x"\ntasks = ["digits-mlp"]\nsparsities = [0.5]\n[recipe]\nepochs = 1\n'
                    'max_train_batches = 2\n[[pruners]]\nname = "random"\n[[pruners]]\nname = "test-faulty"\n'
                    f'args = {{ mode = "exit", marker = "{marker}" }}\n')
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--no-progress"]) == 0
    recs = {r["pruner"]: r for r in (json.loads(p.read_text()) for p in out.glob("runs/*/result.json"))}
    assert recs["random"]["status"] == "ok"
    assert recs["test-faulty"]["status"] == "failed"
    assert recs["test-faulty"]["reason"].startswith("worker process died")
