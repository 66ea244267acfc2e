"""Drivers sharing one output folder, verified run folders, and a clean stop (issue 23).

Real processes on the tiny ``digits-mlp`` task: several ``sparsebench run`` drivers at once must run
each run exactly once; every truncated artefact is named by ``store check`` and repaired by a rerun;
SIGTERM / SIGINT stop the workers and leave nothing that blocks the rerun.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.claims import CLAIM, read_claim, stale_reason, try_claim
from benchmark.store import Store, results

ROOT = Path(__file__).resolve().parents[2]
GRID = ('name = "{name}"\ntasks = ["digits-mlp"]\nsparsities = {sparsities}\nseeds = [0, 1]\n'
        '[recipe]\nepochs = 2\nmax_train_batches = 4\n[[pruners]]\nname = "random"\n')


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), SPARSEBENCH_CHECKPOINT_EVERY="0")


def _cmd(grid: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmark", "run", str(grid), "--out", str(out), "--no-progress", *extra]


def _attempts(folder: Path) -> int:
    """How many times a run was started (its log's start lines)."""
    return sum(1 for line in (folder / "log.txt").read_text().splitlines() if line.split(" ", 2)[1] == "start")


# ------------------------------------------------------------------------------------------- claims
def test_a_claim_is_exclusive_and_a_stale_one_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    first = try_claim(folder)
    assert first is not None and try_claim(folder) is None          # held by a live process (this one)
    first.release()
    assert read_claim(folder) is None
    # a claim left by a process of this host that is gone is stale at once
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / CLAIM).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "x"}))
    assert "gone" in stale_reason(folder)
    lines = []
    taken = try_claim(folder, log=lines.append)
    assert taken is not None and read_claim(folder)["token"] == taken.token
    assert lines and "took over the stale claim" in lines[0]
    taken.release()
    # another host's claim: stale only when its heartbeat stopped
    (folder / CLAIM).write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "y"}))
    assert stale_reason(folder) is None and try_claim(folder) is None
    old = time.time() - 3600
    os.utime(folder / CLAIM, (old, old))
    assert "no heartbeat" in stale_reason(folder)
    assert try_claim(folder) is not None


# ---------------------------------------------------------------------------------- several drivers
@pytest.mark.parametrize("overlapping", [False, True])
def test_four_drivers_on_one_folder_run_every_run_once(tmp_path, overlapping):
    """Four drivers at once on the same grid (or on overlapping grids) into one --out: the union of the
    grids, every run trained once, metrics.jsonl well-formed, store check clean, no driver failing."""
    out = tmp_path / "out"
    sets = (["[0.5, 0.7, 0.9]"] * 4 if not overlapping
            else ["[0.5, 0.7]", "[0.7, 0.8]", "[0.8, 0.9]", "[0.5, 0.9]"])
    grids = []
    for i, sp in enumerate(sets):
        g = tmp_path / f"g{i}.toml"
        g.write_text(GRID.format(name=f"g{i}", sparsities=sp))
        grids.append(g)
    procs = [subprocess.Popen(_cmd(g, out, "--workers", "2"), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for g in grids]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-2000:] for o in outs]
    want = 6 if not overlapping else 8   # sparsities × 2 seeds
    folders = sorted((out / "runs").iterdir())
    assert len(folders) == want
    assert all(_attempts(f) == 1 for f in folders), {f.name: _attempts(f) for f in folders}
    for f in folders:
        epochs = [json.loads(line)["epoch"] for line in (f / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2]
        assert not (f / CLAIM).exists()
    con = sqlite3.connect(out / "results.db")
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
    con.close()
    assert len(ids) == len(set(ids)) == want
    assert Store(out).check() == []


# ------------------------------------------------------------------------------------ verification
ARTEFACTS = ["spec.json", "metrics.jsonl", "masks.pt", "model.pt"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-run grid (copied per test)."""
    base = tmp_path_factory.mktemp("verified")
    grid = base / "g.toml"
    grid.write_text(GRID.format(name="v", sparsities="[0.5]"))
    subprocess.run(_cmd(grid, base / "out"), env=_env(), check=True, capture_output=True, timeout=300)
    return grid, base / "out"


def test_an_archived_folder_without_weights_counts_as_finished(tmp_path, finished):
    """``make archive-results`` keeps no *.pt and writes ``weights.omitted``: restored, the runs are in the
    table, pass ``store check`` and are skipped by a rerun; without the marker the same folders are broken."""
    import shutil

    from benchmark.verify import WEIGHTS_OMITTED

    grid, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    for folder in (out / "runs").iterdir():
        for pt in folder.glob("*.pt"):
            pt.unlink()
    problems = Store(out).check()                                           # no marker: broken
    assert len(results(out)) == 0 and len(problems) == 4 and all(".pt is missing" in p for p in problems)
    for folder in (out / "runs").iterdir():
        (folder / WEIGHTS_OMITTED).touch()
    assert len(results(out)) == 2 and Store(out).check() == []
    res = subprocess.run(_cmd(grid, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "2 already done" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("name", ARTEFACTS)
def test_a_truncated_artefact_is_named_left_out_and_rerun(tmp_path, finished, name):
    import shutil

    grid, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    folder = sorted((out / "runs").iterdir())[0]
    rec = json.loads((folder / "result.json").read_text())
    assert set(ARTEFACTS) <= set(rec["files"]), "result.json records every artefact's size and hash"
    path = folder / name
    data = path.read_bytes()
    cuts = [max(1, len(data) // 2)]
    if name == "metrics.jsonl":   # mid-line (unparsable) and at a line end (parsable, short): named once
        cuts = [data.index(b"\n") + 2, data.index(b"\n") + 1]
    for cut in cuts:
        path.write_bytes(data[:cut])
        problems = Store(out).check()
        assert len(problems) == 1 and problems[0].startswith(f"{folder.name}: {name}"), "\n".join(problems)
    df = results(out)
    assert folder.name not in set(df["run_id"]) and df.attrs["left_out"] == [folder.name]
    if name != "masks.pt":  # one rerun is enough to show the repair (each costs a driver start)
        return
    res = subprocess.run(_cmd(grid, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{folder.name}: {name}" in res.stdout + res.stderr and "running it again" in res.stdout + res.stderr
    assert Store(out).check() == []
    assert len(results(out)) == 2


def test_same_size_corruption_and_interleaved_metrics_are_found_and_repaired(tmp_path, finished):
    import shutil

    grid, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    a, b = sorted((out / "runs").iterdir())
    data = bytearray((a / "model.pt").read_bytes())
    data[-20] ^= 0xFF
    (a / "model.pt").write_bytes(bytes(data))
    lines = (b / "metrics.jsonl").read_text().splitlines()
    (b / "metrics.jsonl").write_text("\n".join([lines[0], lines[0], lines[1]]) + "\n")
    res = subprocess.run([sys.executable, "-m", "benchmark", "store", "check", str(out)], env=_env(),
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "SHA-256" in res.stdout and "not strictly increasing" in res.stdout, res.stdout
    res = subprocess.run([sys.executable, "-m", "benchmark", "store", "check", str(out), "--repair"], env=_env(),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(list((out / "broken").iterdir())) == 2 and len(results(out)) == 0
    subprocess.run(_cmd(grid, out), env=_env(), check=True, capture_output=True, timeout=300)
    assert Store(out).check() == [] and len(results(out)) == 2


def test_damaged_store_pages_give_one_line(tmp_path, finished):
    import shutil

    _, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    db = out / "results.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for i in range(page + 100, len(data)):   # keep the header page, damage the rest
        data[i] = 0x5A
    db.write_bytes(bytes(data))
    for args in (["store", "check", str(out)], ["table", "--out", str(out)]):
        res = subprocess.run([sys.executable, "-m", "benchmark", *args], env=_env(), capture_output=True, text=True)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "store rebuild" in res.stderr


def test_table_without_a_database_ingests_the_run_folders(tmp_path, finished):
    import shutil

    _, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    for p in out.glob("results.db*"):
        p.unlink()
    res = subprocess.run([sys.executable, "-m", "benchmark", "table", "--out", str(out)], env=_env(),
                         capture_output=True, text=True)
    assert res.returncode == 0 and "no results yet" not in res.stdout and "random" in res.stdout


# ------------------------------------------------------------------------------------------ stopping
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_workers_and_the_rerun_completes(tmp_path, sig):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(name="k", sparsities="[0.3, 0.5, 0.7, 0.9]").replace(
        "epochs = 2", "epochs = 4"))
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(grid, out, "--workers", "2"), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("runs/*/result.json")):
        time.sleep(0.05)
    holders = {read_claim(c.parent)["pid"] for c in out.glob(f"runs/*/{CLAIM}") if read_claim(c.parent)}
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("sparsebench: ")
    time.sleep(0.5)
    for pid in holders:   # the workers that held runs are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finished = len(list(out.glob("runs/*/result.json")))
    assert Store(out).check() == [], "every finished run has its row"
    assert 1 <= finished < 8
    subprocess.run(_cmd(grid, out, "--workers", "2"), env=_env(), check=True, capture_output=True, timeout=600)
    assert len(results(out)) == 8 and Store(out).check() == []
