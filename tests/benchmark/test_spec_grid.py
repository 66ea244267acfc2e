"""RunSpec identity and grid expansion."""
import json
from pathlib import Path

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
    assert d["recipe"]["batch_size"] == a.recipe["batch_size"] == 64   # differs from Recipe's default: hashed
    assert "lr" not in d["recipe"] and a.recipe["lr"] == 0.1           # at Recipe's default: left out of the hash
    assert "allocation_args" not in d and a.to_dict()["allocation_args"] == {"dense_first": False, "dense_last": False}
    assert d["dataset"] == "digits" and d["model"] == "mlp" and d["model_args"] == {"hidden": [128, 64]}
    assert d["versions"] == {"pruner": "1", "allocation": "1", "reparam": "1", "recipe": "1"}
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


def test_a_pruner_entry_picks_one_of_several_reparam_entries_by_id():
    # two HAM entries with different alpha; each pruner takes the one its id names (the id is a selector,
    # not part of the run's identity)
    g = expand_grid(grid(pruners=[{"name": "random", "reparams": ["none", "ham-big"]},
                                  {"name": "magnitude", "reparams": ["ham-small"]}],
                         reparams=[{"name": "none"}, {"name": "ham", "id": "ham-big", "args": {"alpha": 20.0}},
                                   {"name": "ham", "id": "ham-small", "args": {"alpha": 2.0}}]))
    got = {(s.pruner, s.reparam, s.reparam_args.get("alpha")) for s in g.specs}
    assert got == {("random", "none", None), ("random", "ham", 20.0), ("magnitude", "ham", 2.0)}
    plain = expand_grid(grid(pruners=[{"name": "magnitude"}], reparams=[{"name": "ham", "args": {"alpha": 2.0}}]))
    assert {s.run_id for s in plain.specs} <= {s.run_id for s in g.specs}
    with pytest.raises(ConfigError, match="ham-smal.*did you mean"):
        expand_grid(grid(pruners=[{"name": "random", "reparams": ["ham-smal"]}],
                         reparams=[{"name": "ham", "id": "ham-small"}]))


# --- complete identity (issue 18): the run id names the whole run ------------------------------------------
@pytest.fixture
def edited_task(monkeypatch):
    """Replace the registered digits-mlp task by a copy with some fields changed (restored afterwards)."""
    import dataclasses

    from benchmark.tasks import TASKS

    original = TASKS.get("digits-mlp")

    def edit(**changes):
        task = dataclasses.replace(original, **changes)
        monkeypatch.setitem(TASKS._entries, "digits-mlp", task)
        return task
    return original, edit


@pytest.mark.parametrize("change", [
    {"model_args": {"hidden": [128, 32]}},
    {"dataset_args": {"split_seed": 1}},
    {"model": "lenet5"},
])
def test_changing_a_task_field_changes_the_run_id(edited_task, change):
    original, edit = edited_task
    before = make_spec("digits-mlp", "random", 0.9, allocation="uniform").run_id
    edit(**change)
    assert make_spec("digits-mlp", "random", 0.9, allocation="uniform").run_id != before


def test_changing_any_recipe_field_of_a_task_changes_the_run_id(edited_task):
    import dataclasses

    original, edit = edited_task
    before = make_spec("digits-mlp", "dense").run_id
    changed = {"epochs": 3, "batch_size": 32, "optimizer": "adamw", "lr": 0.5, "momentum": 0.5, "nesterov": True,
               "betas": (0.8, 0.9), "weight_decay": 0.0, "lr_schedule": "constant", "milestones": (0.5,),
               "gamma": 0.5, "warmup_epochs": 1.0, "label_smoothing": 0.1, "eval_batch_size": 10,
               "max_train_batches": 2, "loss": "mse", "eval_every": 2, "eval_at_steps": (5,),
               "precision": "bf16", "channels_last": True}
    assert set(changed) == {f.name for f in dataclasses.fields(original.recipe)}   # every field is tried
    ids = set()
    for key, value in changed.items():
        edit(recipe=dataclasses.replace(original.recipe, **{key: value}))
        ids.add(make_spec("digits-mlp", "dense").run_id)
    assert before not in ids and len(ids) == len(changed)


def test_a_class_version_changes_the_run_id(monkeypatch):
    from pruners import ALLOCATIONS, PRUNERS
    from reparam import REPARAMS

    spec = lambda: make_spec("digits-mlp", "random", 0.9, allocation="erk", reparam="signin")  # noqa: E731
    ids = {spec().run_id}
    for cls in (PRUNERS.get("random"), ALLOCATIONS.get("erk"), REPARAMS.get("signin")):
        monkeypatch.setattr(cls, "version", "2")
        ids.add(spec().run_id)
    assert len(ids) == 4
    assert spec().versions == {"pruner": "2", "allocation": "2", "reparam": "2", "recipe": "1"}


def test_a_plugin_version_changes_the_run_id(tmp_path):
    from pruners import plugins

    body = """
from dataclasses import dataclass
from pruners import Pruner, register_pruner, prunable_parameters

@register_pruner("versioned")
@dataclass
class Versioned(Pruner):
    version = "{v}"
    def scores(self, model, ctx):
        return {{n: p.detach().abs() for n, p in prunable_parameters(model).items()}}
"""
    ids = []
    for v in ("1.0", "1.1"):
        path = tmp_path / f"v{v.replace('.', '')}.py"
        path.write_text(body.format(v=v), encoding="utf-8")
        plugins.load_plugin(str(path))
        try:
            ids.append(make_spec("digits-mlp", "versioned", 0.5).run_id)
        finally:
            plugins.unload_plugin(str(path))
    assert ids[0] != ids[1]


def test_adding_a_defaulted_hyperparameter_keeps_the_run_id(monkeypatch):
    """OpenLTH's rule: a field at its default is not hashed, so a new hyperparameter with a default
    leaves every stored id valid (spec.json still records it)."""
    import dataclasses

    from pruners import PRUNERS
    from pruners.basic import Random as RandomPruner

    before = make_spec("digits-mlp", "random", 0.9, allocation="uniform")

    @dataclasses.dataclass
    class RandomWithNewKnob(RandomPruner):
        new_knob: float = 0.25

    monkeypatch.setitem(PRUNERS._entries, "random", RandomWithNewKnob)
    after = make_spec("digits-mlp", "random", 0.9, allocation="uniform")
    assert after.run_id == before.run_id
    assert after.to_dict()["pruner_args"]["new_knob"] == 0.25
    assert make_spec("digits-mlp", "random", 0.9, allocation="uniform",
                     pruner_args={"new_knob": 0.5}).run_id != before.run_id


def test_a_stored_spec_keeps_its_task_fields(edited_task):
    original, edit = edited_task
    a = make_spec("digits-mlp", "magnitude", 0.5)
    edit(model_args={"hidden": [16]})
    b = RunSpec.from_dict(a.to_dict())   # re-validated as recorded, not re-resolved from today's catalogue
    assert b == a and b.model_args == {"hidden": [128, 64]}
    old = {k: v for k, v in a.to_dict().items() if k not in ("dataset", "model", "dataset_args", "model_args",
                                                               "versions")}
    old["spec_version"] = 1
    with pytest.raises(ConfigError, match="store migrate"):
        RunSpec.from_dict(old)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "grids").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_committed_grid_loads_and_validates(path):
    """A committed grid that no longer validates (a renamed task, a recipe key, a hyperparameter) fails
    here, not on a researcher's cluster."""
    from benchmark.grid import load_grid

    grid = load_grid(path)
    assert grid.specs and grid.name == path.stem
    if path.stem == "gpu-evidence":   # the GPU path's recipe fields travel in every run's spec
        assert all(s.recipe["precision"] == "bf16" and s.recipe["channels_last"] for s in grid.specs)
