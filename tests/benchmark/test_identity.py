"""Run identity end to end (issue 18): a rerun skips nothing whose task changed, and run folders of spec
format 1 are named by `store check` and rewritten by `store migrate`."""
from __future__ import annotations

import dataclasses
import json
import shutil

from benchmark.runfolder import read_result, run_dir
from benchmark.tasks import TASKS
from test_cli import GOOD, run_cli

GRID = GOOD.replace("epochs = 1", "epochs = 1\nmax_train_batches = 2")


def test_a_rerun_skips_nothing_whose_task_changed(tmp_path, capsys, monkeypatch):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["run", grid, "--out", out, "--no-progress"], capsys)
    assert rc == 0 and "ran 1 (ok 1)" in stdout, err
    rc, stdout, _ = run_cli(["run", grid, "--out", out, "--no-progress"], capsys)
    assert "1 already done" in stdout                                    # unchanged: skipped
    task = TASKS.get("digits-mlp")
    monkeypatch.setitem(TASKS._entries, "digits-mlp", dataclasses.replace(task, model_args={"hidden": [32]}))
    rc, stdout, err = run_cli(["run", grid, "--out", out, "--no-progress"], capsys)
    assert rc == 0 and "0 already done" in stdout and "ran 1 (ok 1)" in stdout, err   # changed: trained again
    specs = [json.loads(p.read_text()) for p in (out / "runs").glob("*/spec.json")]
    assert sorted(s["model_args"]["hidden"] for s in specs) == [[32], [128, 64]]


def _make_format_1(folder, new_id: str, old_id: str) -> None:
    """Turn a finished run folder into what the first spec format wrote (task by name only)."""
    spec = json.loads((folder / "spec.json").read_text())
    old = {k: v for k, v in spec.items() if k not in ("dataset", "model", "dataset_args", "model_args", "versions")}
    old["spec_version"] = 1
    (folder / "spec.json").write_text(json.dumps(old))
    rec = json.loads((folder / "result.json").read_text())
    rec.update(run_id=old_id, spec=old)
    (folder / "result.json").write_text(json.dumps(rec))
    folder.rename(folder.parent / old_id)


def test_store_check_names_format_1_folders_and_migrate_rewrites_them(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    assert run_cli(["run", grid, "--out", out, "--no-progress"], capsys)[0] == 0
    (new_id,) = [p.name for p in (out / "runs").iterdir()]
    metrics = (run_dir(out, new_id) / "metrics.jsonl").read_text()
    masks = (run_dir(out, new_id) / "masks.pt").read_bytes()
    _make_format_1(run_dir(out, new_id), new_id, "0123456789abcdef")
    assert run_cli(["store", "rebuild", out], capsys)[0] == 0
    # an unfinished format-1 folder is named too, and left alone by migrate
    shutil.copytree(run_dir(out, "0123456789abcdef"), run_dir(out, "fedcba9876543210"))
    (run_dir(out, "fedcba9876543210") / "result.json").unlink()

    rc, stdout, _ = run_cli(["store", "check", out], capsys)
    assert rc == 1 and "0123456789abcdef: spec.json has spec format 1" in stdout
    assert "fedcba9876543210: spec.json has spec format 1" in stdout and "store migrate" in stdout
    rc, stdout, _ = run_cli(["run", grid, "--out", out, "--no-progress", "--dry-run"], capsys)
    assert new_id in stdout                                           # the grid's id is the new one

    rc, stdout, err = run_cli(["store", "migrate", out], capsys)
    assert rc == 0 and "migrated 1 run folder(s)" in stdout and "1 unfinished left in place" in stdout, err
    rec = read_result(run_dir(out, new_id))
    assert rec is not None and rec["spec"]["model_args"] == {"hidden": [128, 64]} and rec["spec"]["spec_version"] == 2
    assert (run_dir(out, new_id) / "metrics.jsonl").read_text() == metrics
    assert (run_dir(out, new_id) / "masks.pt").read_bytes() == masks
    assert not run_dir(out, "0123456789abcdef").exists()
    shutil.rmtree(run_dir(out, "fedcba9876543210"))
    rc, stdout, _ = run_cli(["store", "check", out], capsys)
    assert rc == 0 and "0 problem(s)" in stdout
    rc, stdout, _ = run_cli(["run", grid, "--out", out, "--no-progress"], capsys)
    assert "1 already done" in stdout                                 # the migrated run counts as done
