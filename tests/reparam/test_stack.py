"""Reparameterisations that stack (issue 19): one parameterisation, one geometry, one weight-decay schedule."""
from __future__ import annotations

import pytest
import torch

from benchmark.grid import load_grid
from benchmark.runfolder import read_result, run_dir
from benchmark.runner import execute
from benchmark.spec import RunSpec, make_spec
from pruners.registry import ConfigError
from reparam.factorized import factor_pairs
from reparam.stack import Stack, build_reparam, canonical

from reparam_helpers import Driver, random_masks, regression_loss, tiny_mlp

RECIPE = {"epochs": 2, "max_train_batches": 3, "weight_decay": 5e-4}


def test_stack_order_is_canonical_and_the_run_id_does_not_depend_on_the_listing():
    assert canonical(["wd_schedule", "signin"]) == "signin+wd_schedule"
    assert canonical(["wd_schedule", "ham", "pilot"]) == "pilot+ham+wd_schedule"
    a = make_spec("digits-mlp", "random", 0.8, reparam=["wd_schedule", "signin"], recipe=RECIPE)
    b = make_spec("digits-mlp", "random", 0.8, reparam="signin+wd_schedule", recipe=RECIPE)
    assert a.run_id == b.run_id and a.reparam == "signin+wd_schedule"
    assert a.label() == "digits-mlp random +signin+wd_schedule s=0.8 seed=0"
    c = make_spec("digits-mlp", "random", 0.8, reparam=["signin", "wd_schedule"], recipe=RECIPE,
                  reparam_args={"signin": {"gamma": 2.0}})
    assert c.run_id != a.run_id and c.hashed_dict()["reparam_args"] == {"signin": {"gamma": 2.0}}
    assert RunSpec.from_dict(c.to_dict()).run_id == c.run_id


@pytest.mark.parametrize("names,args,needle", [
    (["signin", "pilot"], None, "two of kind 'parameterisation'"),
    (["ham", "nanoadam"], None, "two of kind 'geometry'"),
    (["signin", "signin"], None, "names a reparam twice"),
    (["signin", "none"], None, "cannot be stacked"),
    (["signin", "wd_schedul"], None, "did you mean 'wd_schedule'"),
    (["signin", "wd_schedule"], {"ham": {}}, "not a member"),
    (["signin", "wd_schedule"], {"signin": 2.0}, "must be a table"),
    (["signin", "wd_schedule"], {"signin": {"gama": 2.0}}, "did you mean 'gamma'"),
])
def test_bad_stacks_are_refused_up_front_with_the_reason(names, args, needle):
    with pytest.raises(ConfigError) as exc:
        make_spec("digits-mlp", "random", 0.8, reparam=names, reparam_args=args, recipe=RECIPE)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_a_learned_pruner_refuses_a_stack_with_a_parameterisation_but_takes_a_geometry_stack():
    with pytest.raises(ConfigError, match="re-parameterises the forward pass"):
        make_spec("digits-mlp", "str", 0.8, reparam=["signin", "wd_schedule"], recipe=RECIPE)
    make_spec("digits-mlp", "str", 0.8, reparam=["ham", "wd_schedule"], recipe=RECIPE)


def test_every_member_acts_signin_resets_and_weight_decay_switches_off():
    model = tiny_mlp()
    masks = random_masks(model, 0.6)
    r = build_reparam("signin+wd_schedule", {"signin": {"reset_every": 1}, "wd_schedule": {"t_off": 0.5}})
    assert isinstance(r, Stack) and [p.registry_name for p in r.parts] == ["signin", "wd_schedule"]
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=0.05), epochs=4,
               steps_per_epoch=3)
    assert set(factor_pairs(model))                                       # Sign-In installed m ⊙ w
    loss = regression_loss()
    decay = []
    for _ in range(12):
        d.step(loss)
        decay.append(d.opt.param_groups[0]["weight_decay"])
    assert decay[0] == 0.05 and decay[-1] == 0.0                          # switched off at half of training
    assert d.state.metrics["signin_resets"] == 3                          # resets at epochs 1, 2, 3
    for n, w in r.effective_weights(model).items():
        assert bool((w[~masks[n]] == 0).all())


def test_a_grid_lists_and_trains_a_stack(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\ntasks = ["digits-mlp"]\nsparsities = [0.8]\nseeds = [0]\n'
                    '[recipe]\nepochs = 2\nmax_train_batches = 3\nweight_decay = 5e-4\n'
                    '[[pruners]]\nname = "random"\n'
                    '[[reparams]]\nname = ["signin", "wd_schedule"]\nargs = { wd_schedule = { t_off = 0.5 } }\n')
    (spec,) = load_grid(grid).specs
    assert spec.reparam == "signin+wd_schedule" and spec.reparam_args["wd_schedule"]["t_off"] == 0.5
    execute(spec, tmp_path / "out")
    rec = read_result(run_dir(tmp_path / "out", spec.run_id))
    assert rec["status"] == "ok" and rec["reparam"] == "signin+wd_schedule"
