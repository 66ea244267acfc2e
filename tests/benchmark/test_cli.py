"""The CLI: bad input gives one line, exit 2, no traceback and nothing written; grids resume."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.store import Store
from grid_kill import kill_after_results

GOOD = """
name = "t"
tasks = ["digits-mlp"]
sparsities = [0.5]
seeds = [0]
[recipe]
epochs = 1
[[pruners]]
name = "random"
"""


def write(tmp_path, text, name="grid.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


BAD_GRIDS = [
    (GOOD.replace('"digits-mlp"', '"digits-mpl"'), "unknown task 'digits-mpl' (did you mean 'digits-mlp'?)"),
    (GOOD.replace('name = "random"', 'name = "randm"'), "unknown pruner 'randm' (did you mean 'random'?)"),
    (GOOD + '[[reparams]]\nname = "sign-in"\n', "unknown reparam 'sign-in'"),
    (GOOD.replace("[0.5]", "[1.0]"), "sparsity 1.0 is outside [0, 1)"),
    (GOOD.replace("[0.5]", "[-0.2]"), "sparsity -0.2 is outside [0, 1)"),
    (GOOD.replace("epochs = 1", "epochs = 0"), "recipe epochs must be a positive integer"),
    (GOOD.replace("epochs = 1", "batch_size = 0"), "recipe batch_size must be a positive integer"),
    (GOOD.replace("seeds", "seeds = [0]\nsedes"), "unknown key 'sedes'"),
    (GOOD.replace("[recipe]", "[recipe\n"), "is not valid TOML"),
    (GOOD + "colour = 'red'\n", "unknown key 'colour'"),
]


@pytest.mark.parametrize("text, message", BAD_GRIDS)
def test_bad_grid_gives_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, message):
    grid = write(tmp_path, text)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid, "--out", out], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("sparsebench: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()



@pytest.mark.parametrize("var, value", [("SPARSEBENCH_THREADS", "abc"), ("SPARSEBENCH_THREADS", "0"),
                                        ("SPARSEBENCH_THREADS", "-2"), ("SPARSEBENCH_CHECKPOINT_EVERY", "soon"),
                                        ("SPARSEBENCH_CHECKPOINT_EVERY", "-1"), ("SPARSEBENCH_RUN_TIMEOUT", "later"),
                                        ("SPARSEBENCH_RUN_TIMEOUT", "0")])
def test_bad_env_setting_gives_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", write(tmp_path, GOOD), "--out", out], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and var in err and "Traceback" not in err
    assert not out.exists()

def test_unwritable_output_folder(tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/sparsebench-out"  # root can write anywhere else
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "out"
    rc, _, err = run_cli(["run", write(tmp_path, GOOD), "--out", target], capsys)
    assert rc == 2 and "is not writable" in err and err.count("\n") == 1


def test_missing_dataset_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch):
    import benchmark.tasks.datasets as ds

    monkeypatch.setenv("SPARSEBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setattr(ds, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    ds._cached.cache_clear()
    grid = write(tmp_path, GOOD.replace('"digits-mlp"', '"fmnist-lenet300"'))
    rc, _, err = run_cli(["run", grid, "--out", tmp_path / "out"], capsys)
    ds._cached.cache_clear()
    assert rc == 2 and "Fashion-MNIST not found" in err and "dataset-fashion-mnist" in err
    assert not (tmp_path / "out").exists()


def test_bad_flags_are_one_line(tmp_path, capsys):
    rc, _, err = run_cli(["run", write(tmp_path, GOOD), "--workers", "0"], capsys)
    assert rc == 2 and "--workers" in err and err.count("\n") == 1
    rc, _, err = run_cli(["lst", "tasks"], capsys)
    assert rc == 2 and err.count("\n") == 1
    rc, _, err = run_cli(["run", tmp_path / "missing.toml"], capsys)
    assert rc == 2 and "does not exist" in err
    rc, _, err = run_cli(["run", write(tmp_path, GOOD), "--device", "cuda:7"], capsys)
    assert rc == 2 and err.count("\n") == 1


def test_corrupt_masks_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "masks.pt"
    bad.write_bytes(b"\x00garbage")
    rc, _, err = run_cli(["masks", bad], capsys)
    assert rc == 2 and "corrupt" in err and err.count("\n") == 1


def test_rerun_does_no_training_and_prints_the_same_table(tmp_path, capsys):
    grid = write(tmp_path, GOOD.replace("[0.5]", "[0.5, 0.9]"))
    out = tmp_path / "out"
    assert run_cli(["run", grid, "--out", out, "--no-progress"], capsys)[0] == 0
    _, table1, _ = run_cli(["table", "--out", out], capsys)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("result.json")}
    rc, text, _ = run_cli(["run", grid, "--out", out, "--no-progress"], capsys)
    assert rc == 0 and "2 already done, ran 0" in text
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("result.json")} == mtimes
    assert run_cli(["table", "--out", out], capsys)[1] == table1


def test_sigkill_in_the_middle_then_rerun_completes_without_duplicates(tmp_path):
    """Kill the driver with SIGKILL after some runs finished; the rerun completes the grid."""
    text = GOOD.replace("[0.5]", "[0.3, 0.5, 0.7, 0.8, 0.9, 0.95]").replace("seeds = [0]", "seeds = [0, 1]")
    grid = write(tmp_path, text)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmark", "run", str(grid), "--out", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    done_before = kill_after_results(cmd, out, env, results=3, within=120)
    assert 3 <= done_before < 12, "the kill must land in the middle of the grid"
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = list(out.glob("runs/*/result.json"))
    assert len(results) == 12
    con = sqlite3.connect(out / "results.db")
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
    con.close()
    assert len(ids) == len(set(ids)) == 12
    assert Store(out).check() == []


def test_store_rebuild_restores_a_deleted_or_corrupt_database(tmp_path, capsys):
    grid = write(tmp_path, GOOD.replace("[0.5]", "[0.5, 0.9]"))
    out = tmp_path / "out"
    run_cli(["run", grid, "--out", out, "--no-progress"], capsys)
    before = Store(out).dataframe().sort_values("run_id").reset_index(drop=True)
    (out / "results.db").write_bytes(b"this is not sqlite" * 100)
    rc, _, err = run_cli(["table", "--out", out], capsys)
    assert rc == 2 and "store rebuild" in err
    rc, text, _ = run_cli(["store", "rebuild", out], capsys)
    assert rc == 0 and "with 2 runs" in text
    after = Store(out).dataframe().sort_values("run_id").reset_index(drop=True)
    assert before.equals(after)
    assert run_cli(["store", "check", out], capsys)[0] == 0


def test_list_commands(capsys):
    for what in ("tasks", "pruners", "reparams", "allocations"):
        rc, out, _ = run_cli(["list", what], capsys)
        assert rc == 0 and out.strip()
    assert "fmnist-lenet300" in run_cli(["list", "tasks"], capsys)[1]


def test_run_task_filter_and_table_gains(tmp_path, capsys):
    grid = write(tmp_path, GOOD.replace('tasks = ["digits-mlp"]', 'tasks = ["digits-mlp", "fmnist-lenet300"]')
                 .replace("seeds = [0]", "seeds = [0, 1]").replace("epochs = 1", "epochs = 1\nmax_train_batches = 2")
                 + '[[reparams]]\nname = "none"\n[[reparams]]\nname = "ham"\nargs = { alpha = 2.0 }\n')
    out = tmp_path / "out"
    rc, text, err = run_cli(["run", grid, "--out", out, "--no-progress", "--task", "digits-mlp"], capsys)
    assert rc == 0, err
    rows = Store(out).rows()
    assert {r["task"] for r in rows} == {"digits-mlp"} and len(rows) == 4
    rc, text, _ = run_cli(["table", "--out", out, "--gains"], capsys)
    assert rc == 0 and "random/global+ham" in text and "95 % CI" in text and " 2 " in text   # two pairs
    rc, _, err = run_cli(["run", grid, "--out", out, "--task", "digits-mpl"], capsys)
    assert rc == 2 and "digits-mpl" in err and "did you mean 'digits-mlp'" in err and len(err.strip().splitlines()) == 1


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    from benchmark.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"sparsebench {version('sparsebench')}\n"


def test_list_wraps_long_text_and_show_prints_it_whole(capsys):
    """Issue 21 (newcomer list): no line hundreds of characters wide; descriptions not cut mid-sentence."""
    from benchmark.tasks import TASKS
    from pruners import ALLOCATIONS

    for what in ("tasks", "pruners", "schedules", "reparams", "allocations"):
        assert main(["list", what]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 160, what
    assert main(["list", "allocations"]) == 0
    words = " ".join(capsys.readouterr().out.split())
    assert "a layer with at most X weights is dense." in words            # balanced: its whole first paragraph
    assert main(["show", "task", "fmnist-lenet300"]) == 0
    out = capsys.readouterr().out
    assert TASKS.get("fmnist-lenet300").source in out and "'epochs': 10" in out
    assert main(["show", "allocation", "erk"]) == 0
    assert "power" in capsys.readouterr().out and ALLOCATIONS.get("erk")
    assert main(["show", "pruner", "rigl"]) == 0
    assert "'counting': 'exact'" in capsys.readouterr().out
    assert main(["show", "schedule", "nope"]) == 2


def test_subcommand_help_is_its_own_and_shows_defaults(capsys):
    """Issue 21 (newcomer list): 'leaderboard build --help' is the build command's, with its defaults."""
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "build", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: sparsebench leaderboard build")
    assert "(default: results)" in out and "(default: site)" in out and "--port" not in out
