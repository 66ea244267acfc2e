"""RunSpec identity and grid expansion."""
import json

import pytest

from benchmark.grid import expand_grid, load_grid
from benchmark.spec import RunSpec, make_spec
from pruners import ConfigError


def test_spec_resolves_defaults_and_hashes_canonically():
    a = make_spec("digits-mlp", "random", 0.9, seed=1, allocation="uniform")
    b = make_spec(task="digits-mlp", pruner="random", sparsity=0.9, seed=1, allocation="uniform",
                  recipe={"epochs": a.recipe["epochs"]})  # stating a default does not change the id
    assert a.run_id == b.run_id and len(a.run_id) == 16
    d = json.loads(a.canonical_json())
    assert d["recipe"]["batch_size"] == a.recipe["batch_size"]  # defaults are part of the identity
    assert d["allocation_args"] == {"dense_first": False, "dense_last": False}
    assert make_spec("digits-mlp", "random", 0.9, seed=2, allocation="uniform").run_id != a.run_id
    assert make_spec("digits-mlp", "random", 0.9, seed=1, allocation="uniform",
                     recipe={"lr": 0.05}).run_id != a.run_id


def test_spec_round_trips_through_json():
    a = make_spec("digits-mlp", "magnitude", 0.5, recipe={"epochs": 2})
    assert RunSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a


@pytest.mark.parametrize("kwargs, match", [
    (dict(task="digits-mpl"), "did you mean 'digits-mlp'"),
    (dict(task="digits-mlp", pruner="randon"), "did you mean 'random'"),
    (dict(task="digits-mlp", reparam="nonee"), "unknown reparam"),
    (dict(task="digits-mlp", pruner="random", sparsity=1.0), r"outside \[0, 1\)"),
    (dict(task="digits-mlp", pruner="random", sparsity=-0.1), r"outside \[0, 1\)"),
    (dict(task="digits-mlp", recipe={"epochs": 0}), "epochs must be a positive integer"),
    (dict(task="digits-mlp", recipe={"batch_size": -4}), "batch_size must be a positive integer"),
    (dict(task="digits-mlp", recipe={"epocs": 3}), "did you mean 'epochs'"),
    (dict(task="digits-mlp", recipe={"lr": "fast"}), "lr must be a number"),
    (dict(task="digits-mlp", pruner="random", allocation="unifrom"), "did you mean 'uniform'"),
    (dict(task="digits-mlp", pruner="random", pruner_args={"foo": 1}), "no hyperparameter 'foo'"),
])
def test_bad_spec_input_is_one_line_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        make_spec(**kwargs)
    assert "\n" not in str(info.value)


def grid(**over):
    raw = {"name": "g", "tasks": ["digits-mlp"], "sparsities": [0.5, 0.9], "seeds": [0, 1],
           "pruners": [{"name": "dense"}, {"name": "random", "allocation": ["uniform", "global"]}]}
    raw.update(over)
    return raw


def test_grid_expands_the_cross_product_and_runs_dense_once_per_seed():
    g = expand_grid(grid())
    dense = [s for s in g.specs if s.pruner == "dense"]
    assert len(dense) == 2 and all(s.sparsity == 0.0 for s in dense)
    assert len([s for s in g.specs if s.pruner == "random"]) == 2 * 2 * 2
    assert len({s.run_id for s in g.specs}) == len(g.specs) == 10


def test_task_recipe_overrides_one_task_only():
    g = expand_grid(grid(tasks=["digits-mlp", "fmnist-lenet300"], recipe={"epochs": 2},
                         task_recipe={"fmnist-lenet300": {"epochs": 1}}))
    epochs = {s.task: s.recipe["epochs"] for s in g.specs}
    assert epochs == {"digits-mlp": 2, "fmnist-lenet300": 1}


@pytest.mark.parametrize("over, match", [
    (dict(taks=["digits-mlp"]), "unknown key 'taks'.*did you mean 'tasks'"),
    (dict(pruners=[{"name": "random", "alocation": "uniform"}]), "did you mean 'allocation'"),
    (dict(pruners=[]), "at least one"),
    (dict(seeds="zero"), "seeds"),
    (dict(sparsities=[1.5]), r"outside \[0, 1\)"),
    (dict(task_recipe={"fmnist-lenet5": {"epochs": 1}}), "not in tasks"),
    (dict(recipe={"epochs": -1}), "epochs must be a positive integer"),
    (dict(reparams=[{"args": {}}]), "needs name"),
])
def test_bad_grids_are_config_errors(over, match):
    with pytest.raises(ConfigError, match=match):
        expand_grid(grid(**over))


def test_load_grid_reports_toml_syntax_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("tasks = [digits-mlp\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_grid(p)


def test_bundled_quick_grid_is_valid():
    from pathlib import Path
    g = load_grid(Path(__file__).parents[2] / "grids" / "quick.toml")
    assert len(g.specs) == 28


def test_results_schema_doc_matches_the_code():
    from pathlib import Path

    from benchmark.schema import schema_markdown

    doc = (Path(__file__).parents[2] / "docs" / "results-schema.md").read_text()
    assert doc.endswith(schema_markdown())


def test_a_pruner_entry_can_restrict_its_reparams():
    g = expand_grid(grid(pruners=[{"name": "random", "reparams": ["none"]},
                                  {"name": "magnitude"}],
                         reparams=[{"name": "none"}, {"name": "ham"}]))
    pairs = {(s.pruner, s.reparam) for s in g.specs}
    assert pairs == {("random", "none"), ("magnitude", "none"), ("magnitude", "ham")}
    with pytest.raises(ConfigError, match="not a \\[\\[reparams\\]\\] entry"):
        expand_grid(grid(pruners=[{"name": "random", "reparams": ["signin"]}]))
