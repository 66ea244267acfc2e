"""Faults: each failing run is recorded as failed with its reason and the other runs finish; the
store survives concurrent writers, deletion and corruption; a full disk stops the grid with one line.

The faulty behaviour comes from a test-only pruner defined in a small module file that the local
pool's workers import (``$SPARSEBENCH_PLUGINS``), switched on per spec through its ``mode``
hyperparameter: ``exit`` (``os._exit(3)`` in scores, only while a marker file exists), ``raise``,
``oom`` (MemoryError), ``oom-torch`` (torch.OutOfMemoryError) and ``sleep`` (past the time limit).
"""
from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import sqlite3
from pathlib import Path


from benchmark.cli import main
from benchmark.driver import run_grid
from benchmark.executors import LocalExecutor
from benchmark.grid import expand_grid
from benchmark.runfolder import iter_results, read_result, run_dir
from benchmark.store import Store



def _grid(entries, sparsities=(0.5,), epochs=1):
    raw = {"name": "faults", "tasks": ["digits-mlp"], "sparsities": list(sparsities), "seeds": [0],
           "recipe": {"epochs": epochs, "max_train_batches": 4},
           "pruners": [{"name": "test-faulty", "args": args} for args in entries]}
    return expand_grid(raw)


def _by_mode(recs):
    return {r["pruner_args"]["mode"]: r for r in recs}


def test_pool_survives_worker_death_raise_oom_and_timeout(tmp_path, faulty):
    """Two workers, six runs: one worker dies (os._exit), one run raises, two run out of memory, one
    exceeds the per-run time limit; each is recorded failed with its reason, the good run finishes,
    the pool is restarted after the death and the kill."""
    marker = tmp_path / "die"
    marker.write_text("")
    grid = _grid([{"mode": "exit", "marker": str(marker)}, {"mode": "raise"}, {"mode": "oom"},
                  {"mode": "oom-torch"}, {"mode": "sleep"}, {"mode": "none"}])
    out = tmp_path / "out"
    report = run_grid(grid.specs, out, LocalExecutor(workers=2, run_timeout=30), grid="faults", progress=False,
                      echo=lambda line: None)
    assert report.ran == 6 and report.status == {"failed": 5, "ok": 1}
    recs = _by_mode(iter_results(out))
    assert recs["none"]["status"] == "ok"
    assert recs["exit"]["reason"] == "worker process died (exit code 3)"
    assert recs["raise"]["reason"] == "ValueError: scores exploded on purpose"
    assert recs["oom"]["reason"] == "out of memory"
    assert recs["oom-torch"]["reason"].startswith("out of memory (CUDA out of memory.")
    assert recs["sleep"]["reason"] == "timeout: exceeded the per-run time limit of 30 s"
    # the store has every run exactly once and agrees with the folders
    rows = Store(out).rows()
    assert sorted(r["run_id"] for r in rows) == sorted(s.run_id for s in grid.specs)
    assert Store(out).check() == []
    # the dead worker's run is retried with --retry-failed once the cause is gone (in a one-worker
    # pool: workers = 1 with a time limit needs a killable process too)
    marker.unlink()
    exit_spec = next(s for s in grid.specs if s.pruner_args["mode"] == "exit")
    report = run_grid([exit_spec], out, LocalExecutor(workers=1, run_timeout=300), grid="faults", progress=False,
                      retry_failed=True, echo=lambda line: None)
    assert report.ran == 1 and report.status == {"ok": 1}
    assert _by_mode(iter_results(out))["exit"]["status"] == "ok"


def _writer(out: str, start: int, n: int, barrier) -> None:
    from benchmark.store import Store

    store = Store(out)
    barrier.wait()
    for i in range(start, start + n):
        store.upsert([{"run_id": f"run{i:04d}", "status": "ok", "task": "t", "seed": i}])
        if i % 3 == 0:  # rewrite an earlier row: replaced, never duplicated
            store.upsert([{"run_id": f"run{start:04d}", "status": "ok", "task": "t", "seed": start}])


def test_four_processes_writing_one_store_at_once(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(str(out), k * 50, 50, barrier)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    con = sqlite3.connect(out / "results.db")
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
    con.close()
    assert len(ids) == len(set(ids)) == 200
    assert set(ids) == {f"run{i:04d}" for i in range(200)}


GOOD = """
name = "t"
tasks = ["digits-mlp"]
sparsities = [0.5, 0.9]
seeds = [0]
[recipe]
epochs = 1
max_train_batches = 4
[[pruners]]
name = "random"
"""


def test_deleted_database_is_rebuilt_with_every_finished_run(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GOOD)
    out = tmp_path / "out"
    assert main(["run", str(grid), "--out", str(out), "--no-progress"]) == 0
    before = Store(out).dataframe().sort_values("run_id").reset_index(drop=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(out / "results.db") + suffix).unlink(missing_ok=True)
    assert main(["store", "rebuild", str(out)]) == 0
    assert "with 2 runs" in capsys.readouterr().out
    after = Store(out).dataframe().sort_values("run_id").reset_index(drop=True)
    assert before.equals(after)


def test_full_disk_stops_with_one_line_and_keeps_finished_runs(tmp_path, capsys, monkeypatch):
    """The second run's writes fail with ENOSPC: exit 2, one line, the first run stays recorded."""
    import benchmark.runfolder as rf
    import benchmark.runner as runner

    grid = tmp_path / "g.toml"
    grid.write_text(GOOD)
    out = tmp_path / "out"
    real = rf.atomic_write_bytes
    calls = {"results": 0}

    def flaky(path, data):
        if Path(path).name == "result.json":
            calls["results"] += 1
            if calls["results"] >= 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(rf, "atomic_write_bytes", flaky)
    monkeypatch.setattr(runner, "atomic_write_bytes", flaky)
    rc = main(["run", str(grid), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"sparsebench: error: cannot write to output folder {str(out)!r} "
                                   "(No space left on device)")
    assert "Traceback" not in captured.err
    finished = list(iter_results(out))
    assert len(finished) == 1 and finished[0]["status"] == "ok"
    assert [r["run_id"] for r in Store(out).rows()] == [finished[0]["run_id"]]
    monkeypatch.setattr(rf, "atomic_write_bytes", real)
    monkeypatch.setattr(runner, "atomic_write_bytes", real)
    assert main(["run", str(grid), "--out", str(out), "--no-progress"]) == 0
    assert "1 already done, ran 1" in capsys.readouterr().out
    assert Store(out).check() == []


def test_status_shows_every_state_with_reasons(tmp_path, capsys, faulty):
    text = GOOD.replace('name = "random"', 'name = "test-faulty"\nargs = { mode = "raise" }') + \
        '[[pruners]]\nname = "random"\n'
    grid = tmp_path / "g.toml"
    grid.write_text(text)
    out = tmp_path / "out"
    from benchmark.grid import load_grid

    specs = load_grid(grid).specs
    assert len(specs) == 4
    # run two of the four: one ok, one failed
    run_grid([specs[0], specs[2]], out, LocalExecutor(), grid="t", progress=False, echo=lambda line: None)
    # an unfinished folder, fresh (running) and one gone stale (interrupted)
    for spec, age in ((specs[1], 0), (specs[3], 10_000)):
        folder = run_dir(out, spec.run_id)
        folder.mkdir(parents=True)
        (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
        (folder / "metrics.jsonl").write_text('{"epoch": 1}\n')
        if age:
            for f in folder.iterdir():
                os.utime(f, (f.stat().st_atime - age, f.stat().st_mtime - age))
    assert main(["status", str(out), "--grid", str(grid)]) == 0
    text = capsys.readouterr().out
    header, row = text.splitlines()[0].split(), text.splitlines()[2].split()
    counts = dict(zip(header[1:], map(int, row[1:])))
    assert counts == {"done": 1, "running": 1, "interrupted": 1, "failed": 1, "diverged": 0, "pending": 0,
                      "total": 4}
    assert "failed      digits-mlp test-faulty s=0.5 seed=0: ValueError: scores exploded on purpose" in text
    assert "interrupted" in text and "no progress for" in text
    # a grid entry without a folder is pending; without the grid only the folders count
    from benchmark.spec import make_spec
    from benchmark.status import run_statuses

    extra = make_spec(task="digits-mlp", pruner="random", sparsity=0.7, recipe={"epochs": 1})
    states = [s.state for s in run_statuses(out, [*specs, extra], "t")]
    assert states == ["failed", "running", "done", "interrupted", "pending"]
    assert sorted(s.state for s in run_statuses(out)) == ["done", "failed", "interrupted", "running"]
    assert main(["status", str(out)]) == 0
    assert read_result(run_dir(out, specs[0].run_id))["status"] == "failed"


def test_a_fresh_run_whose_holder_died_is_interrupted_at_once(tmp_path):
    """Issue 24 (4): a killed worker's run is 'interrupted' right away, not 'running' for minutes."""
    import json as _json
    import socket
    import subprocess
    import sys as _sys

    from benchmark.claims import CLAIM
    from benchmark.status import folder_status

    folder = tmp_path / "runs" / "abc"
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(_json.dumps({"task": "digits-mlp", "pruner": "random", "sparsity": 0.5}))
    (folder / "log.txt").write_text("start\n")
    dead = subprocess.Popen([_sys.executable, "-c", "pass"])
    dead.wait()
    (folder / CLAIM).write_text(_json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "t"}))
    assert folder_status(folder).state == "interrupted"
    import os as _os

    (folder / CLAIM).write_text(_json.dumps({"host": socket.gethostname(), "pid": _os.getpid(), "token": "t"}))
    assert folder_status(folder).state == "running"


def test_leaderboard_build_and_table_leave_out_a_run_with_a_truncated_metrics_file(tmp_path, capsys):
    """Issue 23 (also found): `leaderboard build` on a run whose metrics.jsonl is truncated gave a traceback;
    now the run is left out, one line says so, and the site builds from the others."""
    from benchmark.cli import main
    from benchmark.runner import execute
    from benchmark.runfolder import run_dir
    from benchmark.spec import make_spec

    out = tmp_path / "out"
    specs = [make_spec("digits-mlp", "random", sp, recipe={"epochs": 1, "max_train_batches": 2}) for sp in (0.5, 0.9)]
    for spec in specs:
        execute(spec, out)
    metrics = run_dir(out, specs[0].run_id) / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 2])
    capsys.readouterr()
    assert main(["leaderboard", "build", "--out", str(out), "--site", str(tmp_path / "site")]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "left out 1 finished run(s)" in captured.err
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "from 1 runs" in index
    assert main(["table", "--out", str(out)]) == 0
    assert "left out 1 finished run(s)" in capsys.readouterr().err
