"""Plugins: loading from files, modules and entry points; the environment hand-off to workers; the CLI's
``run --plugin``, ``plugin check`` and ``submit``; and every kind of bad plugin (one line, exit 2,
nothing written, the grid not started)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.cli import main
from pruners import PRUNERS, plugins
from pruners.registry import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SRC = ROOT / "examples" / "plugin-example" / "src"


def plugin_file(tmp_path: Path, body: str, name: str = "myplugin.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
from dataclasses import dataclass
import torch
from pruners import Pruner, register_pruner, prunable_parameters

@register_pruner("{name}")
@dataclass
class Smallest(Pruner):
    '''Keeps the smallest-magnitude weights (a deliberately poor criterion).'''
    power: float = 1.0
    description = "keeps the smallest weights"
    paper = "none (a test plugin)"
    url = "https://example.org/smallest"
    version = "{version}"
    author = "Test Author"

    def scores(self, model, ctx):
        {body}
"""
GOOD_BODY = "return {n: -p.detach().abs() ** self.power for n, p in prunable_parameters(model).items()}"


def good(tmp_path, name="smallest", version="1.0", body=GOOD_BODY, file="myplugin.py") -> Path:
    return plugin_file(tmp_path, GOOD.format(name=name, version=version, body=body), file)


GRID = """
name = "t"
tasks = ["digits-mlp"]
sparsities = [0.9]
seeds = [0]
[recipe]
epochs = 1
[[pruners]]
name = "{pruner}"
{extra}
"""


def grid_file(tmp_path, pruner="smallest", extra="") -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(GRID.format(pruner=pruner, extra=extra))
    return path


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_exit_2(rc, err, out_dir: Path, *fragments: str):
    assert rc == 2, err
    assert err.startswith("sparsebench: error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
    assert not out_dir.exists(), "nothing may be written"


# ------------------------------------------------------------------------------------------------
# loading
def test_file_plugin_registers_with_its_origin_and_exports_the_env(tmp_path):
    path = good(tmp_path)
    (plugin,) = plugins.load_plugins([path])
    assert plugin.pruners == ["smallest"] and plugin.kind == "file"
    assert PRUNERS.origin("smallest") == f"plugin {path}"
    assert os.environ[plugins.ENV_VAR] == str(path.resolve())
    meta = plugins.pruner_metadata("smallest")
    assert (meta["version"], meta["author"], meta["url"]) == ("1.0", "Test Author", "https://example.org/smallest")
    assert plugins.plugin_extra("smallest") == {"plugin": meta}
    assert plugins.plugin_extra("magnitude") == {}


def test_loading_the_same_file_twice_registers_once(tmp_path, monkeypatch):
    path = good(tmp_path)
    first = plugins.load_plugin(path)
    monkeypatch.chdir(tmp_path)
    again = plugins.load_plugins(["./myplugin.py", str(path)])
    assert again == [first, first]
    assert os.environ.get(plugins.ENV_VAR, "").split(os.pathsep) == [str(path.resolve())]


def test_a_file_already_imported_under_another_name_is_adopted_not_run_twice(tmp_path):
    """E.g. a worker bootstrap imported the file itself before discovery loads $SPARSEBENCH_PLUGINS."""
    import importlib.util

    path = good(tmp_path)
    spec = importlib.util.spec_from_file_location("sparsebench_worker_myplugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert PRUNERS.origin("smallest") == "built-in"  # registered outside any plugin context
        (plugin,) = plugins.load_plugins([path])
        assert plugin.module is module and plugin.pruners == ["smallest"]
        assert PRUNERS.get("smallest") is module.Smallest
        assert PRUNERS.origin("smallest") == f"plugin {path}"
    finally:
        sys.modules.pop(spec.name, None)


def test_module_plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "prune.py").write_text(textwrap.dedent(GOOD.format(name="modprune", version="2", body=GOOD_BODY)))
    monkeypatch.syspath_prepend(str(tmp_path))
    (plugin,) = plugins.load_plugins(["plugpkg.prune"])
    assert plugin.kind == "module" and plugin.pruners == ["modprune"]
    assert PRUNERS.origin("modprune") == "plugin plugpkg.prune"
    assert os.environ[plugins.ENV_VAR] == "plugpkg.prune"


def test_workers_see_plugins_through_the_environment(tmp_path):
    """A fresh process that inherits the environment (as a spawned / Ray / Slurm worker does) finds the
    plugin pruner by name and builds it from a spec's hyperparameters, as ``RunSpec.from_dict`` does."""
    path = good(tmp_path)
    plugins.load_plugins([path])
    code = ("from pruners import PRUNERS; from pruners.registry import build_config; "
            "p = build_config(PRUNERS.get('smallest'), {'power': 2}, 'pruner'); "
            "print(p.power, PRUNERS.origin('smallest'))")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2.0", "plugin", str(path)]


def test_entry_point_discovery_of_the_example_package(tmp_path, monkeypatch):
    """The example package's entry point, installed as a throwaway dist-info directory on sys.path."""
    dist = tmp_path / "sparsebench_force-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sparsebench-force\nVersion: 0.1.0\n"
                                   "Author: sparsebench example\n")
    import tomllib

    eps = tomllib.loads((EXAMPLE_SRC.parent / "pyproject.toml").read_text())["project"]["entry-points"]
    lines = "".join(f"{k} = {v}\n" for k, v in eps["sparsebench.pruners"].items())
    (dist / "entry_points.txt").write_text(f"[sparsebench.pruners]\n{lines}")
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.rescan_entry_points()
    cls = PRUNERS.get("force")
    assert cls.__module__ == "sparsebench_force.force"
    assert PRUNERS.origin("force") == "entry point sparsebench_force.force:FORCE (sparsebench-force 0.1.0)"
    meta = plugins.pruner_metadata("force")
    assert meta["version"] == "0.1.0" and "de Jorge" in meta["paper"]
    from pruners.conformance import KitConfig, Target
    from pruners.testing import run_checks

    code, rows = run_checks([Target.of("force")], KitConfig(models=("mlp",), gpu=False))
    assert code == 0 and "fail" not in {r[2] for r in rows}


def test_broken_installed_entry_point_is_one_line(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sparsebench.pruners]\nbroken = sparsebench_plugin_nowhere:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.rescan_entry_points()
    with pytest.raises(ConfigError, match=r"installed pruner plugin 'broken' .* failed to import: "
                                          r"ModuleNotFoundError.*fix or uninstall that package"):
        PRUNERS.get("magnitude")


def test_a_plugin_that_fails_halfway_registers_nothing(tmp_path):
    path = plugin_file(tmp_path, GOOD.format(name="first-ok", version="1", body=GOOD_BODY)
                       + GOOD.format(name="magnitude", version="1", body=GOOD_BODY).split("\n", 1)[1])
    with pytest.raises(ConfigError, match="'magnitude' from plugin .* is already registered by built-in"):
        plugins.load_plugins([path])
    assert "first-ok" not in PRUNERS and PRUNERS.origin("magnitude") == "built-in"
    assert plugins.ENV_VAR not in os.environ and not plugins.loaded_plugins()


def test_load_plugins_is_all_or_nothing(tmp_path):
    ok = good(tmp_path)
    missing = tmp_path / "missing.py"
    with pytest.raises(ConfigError, match="does not exist"):
        plugins.load_plugins([ok, missing])
    assert "smallest" not in PRUNERS and plugins.ENV_VAR not in os.environ


# ------------------------------------------------------------------------------------------------
# bad plugins through `sparsebench run --plugin` (each: one line, exit 2, nothing written)
def test_missing_file(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", tmp_path / "nope.py", "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "nope.py", "does not exist")


def test_import_error_shows_the_plugins_own_error_line(tmp_path, capsys):
    path = plugin_file(tmp_path, "import math\n\nratio = 1 / 0\n", "bad.py")
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, f"plugin '{path}' failed to import: ZeroDivisionError: division by zero "
                                         "(bad.py, line 3)")


def test_syntax_error(tmp_path, capsys):
    path = plugin_file(tmp_path, "def broken(:\n    pass\n", "syn.py")
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "syn.py", "SyntaxError", "line 1")


def test_missing_module(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", "sparsebench_plugin_nowhere.mod", "--out", out],
                         capsys)
    assert_one_line_exit_2(rc, err, out, "'sparsebench_plugin_nowhere.mod' failed to import: ModuleNotFoundError")


def test_module_without_a_registered_pruner(tmp_path, capsys):
    path = plugin_file(tmp_path, "from pruners import Pruner\n\nclass Forgot(Pruner):\n    pass\n", "empty.py")
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "empty.py", "registers no pruner, schedule or reparam", "@register_pruner")


def test_two_plugins_registering_the_same_name(tmp_path, capsys):
    a = good(tmp_path, file="a.py")
    b = good(tmp_path, file="b.py")
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", a, "--plugin", b, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, f"plugin '{b}'", "pruner 'smallest'", f"already registered by plugin {a}",
                           "rename one of them")
    assert "smallest" not in PRUNERS  # the first plugin was rolled back too


def test_plugin_reusing_a_builtin_name(tmp_path, capsys):
    path = good(tmp_path, name="magnitude")
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path, "magnitude"), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "pruner 'magnitude'", "already registered by built-in")


def test_class_missing_scores(tmp_path, capsys):
    path = plugin_file(tmp_path, """
        from dataclasses import dataclass
        from pruners import Pruner, register_pruner

        @register_pruner("noscore")
        @dataclass
        class NoScore(Pruner):
            def score(self, model, ctx):  # misspelt
                return {}
    """)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path, "noscore"), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "pruner 'noscore' (class NoScore) has no scores() method")


def test_class_that_is_not_a_dataclass(tmp_path, capsys):
    path = plugin_file(tmp_path, """
        from pruners import Pruner, register_pruner

        @register_pruner("nodc")
        class NoDataclass(Pruner):
            alpha: float = 1.0
            def scores(self, model, ctx):
                return {}
    """)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path, "nodc"), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "pruner 'nodc' (class NoDataclass) is not a dataclass")


BAD_SCORES = [
    ("return {n: p.detach().abs().reshape(-1) for n, p in prunable_parameters(model).items()}",
     "fails the conformance check 'scores'", "with shape"),
    ("return {n: p.detach().abs() * float('nan') for n, p in prunable_parameters(model).items()}",
     "fails the conformance check 'scores'", "NaN or inf"),
    ("return {n: p.detach().abs() + float('inf') for n, p in prunable_parameters(model).items()}",
     "fails the conformance check 'scores'", "NaN or inf"),
]


@pytest.mark.parametrize("body, check, reason", BAD_SCORES, ids=["wrong-shape", "nan", "inf"])
def test_bad_scores_stop_the_grid_before_it_starts(tmp_path, capsys, body, check, reason):
    path = good(tmp_path, body=body)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, f"plugin '{path}'", "pruner 'smallest'", check, reason,
                           "the grid was not started")


def test_mask_that_is_not_bool(tmp_path, capsys):
    path = plugin_file(tmp_path, """
        from dataclasses import dataclass
        from pruners import Pruner, register_pruner, prunable_parameters

        @register_pruner("floatmask")
        @dataclass
        class FloatMask(Pruner):
            def initial_masks(self, model, ctx, sparsity, allocation):
                return {n: (p.detach().abs() > 0.05).float() for n, p in prunable_parameters(model).items()}
    """)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path, "floatmask"), "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "fails the conformance check 'masks'", "dtype torch.float32, not torch.bool")


def test_hyperparameter_of_the_wrong_type_in_the_grid(tmp_path, capsys):
    path = good(tmp_path)
    out = tmp_path / "out"
    grid = grid_file(tmp_path, extra='args = { power = "two" }')
    rc, _, err = run_cli(["run", grid, "--plugin", path, "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "pruner 'smallest' hyperparameter power must be a number, got 'two'",
                           f"comes from plugin {path}")


def test_grid_naming_a_plugin_pruner_without_the_plugin(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", grid_file(tmp_path, "smallest"), "--out", out], capsys)
    assert_one_line_exit_2(rc, err, out, "unknown pruner 'smallest'")


def test_pruner_raising_during_a_run_fails_only_its_runs(tmp_path, capsys):
    """Passes the pre-flight (4 classes) but raises on the real task (10 classes): recorded as failed
    with its traceback in the run folder; the rest of the grid goes on."""
    body = ("if ctx.num_classes == 10:\n"
            "            raise RuntimeError('cannot handle ten classes')\n"
            "        " + GOOD_BODY)
    path = good(tmp_path, body=body)
    out = tmp_path / "out"
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(pruner="smallest", extra="") + '[[pruners]]\nname = "random"\n')
    rc, stdout, _ = run_cli(["run", grid, "--plugin", path, "--out", out, "--no-progress"], capsys)
    assert rc == 0
    assert "ran 2 (failed 1, ok 1)" in stdout
    from benchmark.store import results

    df = results(out).set_index("pruner")
    assert df.loc["random", "status"] == "ok"
    assert df.loc["smallest", "status"] == "failed"
    assert "RuntimeError: cannot handle ten classes" in df.loc["smallest", "reason"]
    log = (out / "runs" / df.loc["smallest", "run_id"] / "log.txt")
    if not log.exists():  # run folders may be sharded
        log = next(out.rglob(f"{df.loc['smallest', 'run_id']}/log.txt"))
    text = log.read_text()
    assert "Traceback" in text and "myplugin.py" in text


# ------------------------------------------------------------------------------------------------
# plugin check and submit
def test_plugin_check_prints_the_table(tmp_path, capsys):
    rc, out, _ = run_cli(["plugin", "check", good(tmp_path), "--no-gpu"], capsys)
    assert rc == 0
    for check in ("interface", "scores", "masks", "density", "deterministic", "model-unchanged", "no-grad-left",
                  "collapse", "training", "time", "cpu", "gpu"):
        assert f"smallest  {check}" in out
    assert "1 of 1 target(s) pass the conformance kit" in out


def test_plugin_check_failure_exits_1_with_the_reason(tmp_path, capsys):
    body = ("x, y = ctx.batches(8)[0]\n"
            "        ctx.loss_fn(model(x), y).backward()\n"
            "        " + GOOD_BODY)
    rc, out, _ = run_cli(["plugin", "check", good(tmp_path, body=body), "--no-gpu"], capsys)
    assert rc == 1
    assert "no-grad-left     fail" in out and "left .grad on" in out
    assert "failing: smallest" in out


def test_plugin_check_of_a_builtin(capsys):
    rc, out, _ = run_cli(["plugin", "check", "--pruner", "magnitude", "--no-gpu"], capsys)
    assert rc == 0 and "magnitude  density" in out


def test_submit_runs_the_grid_and_records_plugin_metadata(tmp_path, capsys):
    path = good(tmp_path, version="1.0")
    grid = tmp_path / "std.toml"
    grid.write_text(GRID.format(pruner="dense", extra="") + '[[pruners]]\nname = "magnitude"\n')
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["submit", path, "--grid", grid, "--out", out, "--no-progress", "--no-gpu"], capsys)
    assert rc == 0, err
    assert "conformance kit: smallest pass" in stdout
    assert "3 not yet in" in stdout and "2 baseline runs (a new --out runs every baseline once" in stdout
    assert "ran 3 (ok 3)" in stdout
    assert "submitted smallest 1.0 by Test Author: keeps the smallest weights https://example.org/smallest" in stdout
    from benchmark.store import results

    df = results(out).set_index("pruner")
    assert set(df.index) == {"dense", "magnitude", "smallest"}
    extra = df.loc["smallest", "extra"]
    extra = json.loads(extra) if isinstance(extra, str) else extra
    assert extra["plugin"]["version"] == "1.0" and extra["plugin"]["author"] == "Test Author"
    assert extra["plugin"]["origin"] == f"plugin {path}"
    base = df.loc["magnitude", "extra"]
    assert "plugin" not in (json.loads(base) if isinstance(base, str) else (base or {}))
    # the submission is ranked beside the baselines
    assert "smallest/global" in stdout and "magnitude/global" in stdout

    # a new version of the same pruner is a new run (its version is in the run id): it runs, nothing is skipped
    plugins.unload_plugin(str(path))
    path2 = good(tmp_path, version="2.0", file="v2.py")
    rc, stdout, err = run_cli(["submit", path2, "--grid", grid, "--out", out, "--no-progress", "--no-gpu"], capsys)
    assert rc == 0, err
    assert "ran 1 (ok 1)" in stdout                     # the baselines are done, the new version is not
    versions = {json.loads(e)["plugin"]["version"] if isinstance(e, str) else e["plugin"]["version"]
                for e in results(out).query("pruner == 'smallest'")["extra"]}
    assert versions == {"1.0", "2.0"}


def test_submit_refuses_a_plugin_that_fails_the_kit(tmp_path, capsys):
    body = "return {n: p.detach().abs() * float('nan') for n, p in prunable_parameters(model).items()}"
    out = tmp_path / "out"
    rc, _, err = run_cli(["submit", good(tmp_path, body=body), "--out", out, "--no-gpu"], capsys)
    assert_one_line_exit_2(rc, err, out, "fails the conformance check 'scores'", "NaN or inf", "nothing was run")


def test_standard_grid_has_the_baselines_and_stays_small():
    from benchmark.grid import load_grid

    grid = load_grid(ROOT / "grids" / "standard.toml")
    assert {s.pruner for s in grid.specs} == {"dense", "random", "magnitude"}
    assert {s.task for s in grid.specs} == {"digits-mlp", "fmnist-lenet300"}
    assert len({s.seed for s in grid.specs}) in (2, 3)
    assert len(grid.specs) <= 40


def test_a_plugin_registers_a_schedule_and_a_stackable_reparam_used_in_a_grid(tmp_path, capsys):
    """Issue 19 (7): schedules and reparams come from plugins the way pruners do; a schedule of a plugin
    runs any score, a reparam that declares its kind joins a stack."""
    path = tmp_path / "axes.py"
    path.write_text(
        "from dataclasses import dataclass\n"
        "from pruners import Schedule, register_schedule\n"
        "from pruners.hooks import Callback\n"
        "from reparam import Reparam, register_reparam\n\n"
        "class _Half(Callback):\n"
        "    def __init__(self, pruner, density, allocation):\n"
        "        self.args = (pruner, density, allocation)\n"
        "    def on_epoch_start(self, state):\n"
        "        pruner, density, allocation = self.args\n"
        "        if state.epoch == state.epochs // 2:\n"
        "            state.masks.update(pruner.training_select(state, density, allocation), state.optimizer)\n\n"
        "@register_schedule('halfway')\n@dataclass\nclass Halfway(Schedule):\n"
        "    description = 'train dense for half the run, prune once, train on'\n"
        "    def callbacks(self, pruner, sparsity, allocation):\n"
        "        return [_Half(pruner, 1.0 - sparsity, allocation)]\n\n"
        "@register_reparam('noop_geometry')\n@dataclass\nclass Noop(Reparam):\n"
        "    kind = 'geometry'\n    description = 'the recipe optimiser, unchanged'\n")
    (plugin,) = plugins.load_plugins([path])
    assert plugin.schedules == ["halfway"] and plugin.reparams == ["noop_geometry"]
    from benchmark.runfolder import read_result, run_dir
    from benchmark.runner import execute
    from benchmark.spec import make_spec

    spec = make_spec("digits-mlp", "snip", 0.7, schedule="halfway", reparam=["noop_geometry", "signin"],
                     recipe={"epochs": 2, "max_train_batches": 3})
    assert spec.reparam == "signin+noop_geometry"
    execute(spec, tmp_path / "out")
    rec = read_result(run_dir(tmp_path / "out", spec.run_id))
    assert rec["status"] == "ok" and rec["schedule"] == "halfway"
    assert abs(rec["achieved_sparsity"] - 0.7) < 1e-3
    # the conformance kit checks both (issue 19 (7))
    rc, out, _ = run_cli(["plugin", "check", str(path), "--no-gpu"], capsys)
    assert rc == 0, out
    assert "schedule:halfway       density" in out and "reparam:noop_geometry  training         pass" in out
    assert "2 of 2 target(s) pass the conformance kit" in out


def test_submit_finds_the_standard_grid_from_the_plugins_own_folder(tmp_path, monkeypatch):
    """Issue 24 (1): the default grid is the installed suite's grids/standard.toml, not one looked up in
    the current folder (docs/plugins.md puts the plugin file in its own folder)."""
    from benchmark.cli import standard_grid
    from benchmark.grid import load_grid

    monkeypatch.chdir(tmp_path)
    assert not (tmp_path / "grids").exists()
    path = standard_grid()
    assert path == ROOT / "grids" / "standard.toml" and len(load_grid(path).specs) <= 40


def test_a_wheel_install_finds_the_standard_grid_in_its_data_files(tmp_path, monkeypatch):
    """Issue 24 (1): without the repository beside the package, the grid installed by pyproject's
    data-files (<prefix>/share/sparsebench/grids) is used."""
    import sysconfig

    import benchmark.cli as cli

    shared = tmp_path / "prefix" / "share" / "sparsebench" / "grids"
    shared.mkdir(parents=True)
    (shared / "standard.toml").write_text((ROOT / "grids" / "standard.toml").read_text())
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "benchmark" / "cli.py"))
    real = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(tmp_path / "prefix") if name == "data"
                        else real(name, *a, **k))
    assert cli.standard_grid() == shared / "standard.toml"
    (shared / "standard.toml").unlink()
    with pytest.raises(ConfigError, match="the standard grid is not installed"):
        cli.standard_grid()
