"""The schedule axis (issue 19): any score under any schedule, the invariants of each schedule with a
score other than magnitude, refusals before anything runs, and the grid / CLI surface."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.grid import load_grid
from benchmark.runfolder import read_result, run_dir
from benchmark.runner import execute
from benchmark.spec import RunSpec, make_spec
from pruners import ALLOCATIONS, PRUNERS, SCHEDULES, Callback, ConfigError, PruneContext
from pruners.registry import build_config
from pruners.schedules import bind_schedule, cubic_sparsity
from pruners.session import build_session, fit

RECIPE = {"epochs": 2, "max_train_batches": 4}


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def train(pruner_name: str, schedule: str, sargs: dict, sparsity: float, epochs: int = 6, steps: int = 5,
          allocation: str = "uniform", extra: tuple[Callback, ...] = (), pargs: dict | None = None):
    """The runner's wiring with a pruner bound to ``schedule`` on a toy problem with data (SNIP needs it)."""
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(steps * 16, 8, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    loader = [(X[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]) for i in range(steps)]
    pruner = build_config(PRUNERS.get(pruner_name), pargs or {}, pruner_name)
    bind_schedule(pruner, schedule, sargs)
    alloc = build_config(ALLOCATIONS.get(allocation), {}, allocation)
    ctx = PruneContext(seed=0, batches=lambda n: loader[: max(1, n // 16)], loss_fn=F.cross_entropy,
                       device=torch.device("cpu"), num_classes=3, input_shape=(8,))
    masks = pruner.initial_masks(model, ctx, sparsity, alloc)
    session = build_session(model, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), pruner=pruner,
                            allocation=alloc, sparsity=sparsity, callbacks=extra, ctx=ctx,
                            epochs=pruner.total_epochs(epochs, sparsity), steps_per_epoch=steps)
    fit(session, loader, F.cross_entropy)
    return pruner, session


class MaskLog(Callback):
    """Every step's masks, after the step's callbacks."""

    def __init__(self) -> None:
        self.masks: dict[int, dict[str, torch.Tensor]] = {}

    def after_step(self, state) -> None:
        self.masks[state.step + 1] = {n: m.clone() for n, m in state.masks.masks.items()}


def test_snip_under_gradual_follows_the_cubic_ramp_and_hits_the_target_at_its_end():
    log = MaskLog()
    pruner, session = train("snip", "gradual", {"start": 0.1, "end": 0.6, "frequency": 2}, 0.9, extra=(log,),
                            allocation="global")
    ex = pruner.extra_results()
    T = session.state.total_steps
    assert ex["t0"] == round(0.1 * T) and ex["t_end"] == round(0.6 * T)
    for t, s_sched, s_achieved in ex["schedule"]:
        assert s_sched == pytest.approx(cubic_sparsity(t, 0.0, 0.9, ex["t0"], ex["t_end"]))
        assert abs(s_achieved - s_sched) <= 1 / 616 + 1e-12
    assert ex["schedule"][-1][0] == ex["t_end"] and ex["schedule"][-1][2] == pytest.approx(0.9, abs=1 / 616)
    steps = sorted(log.masks)                       # nested: a pruned weight never comes back
    for a, b in zip(steps, steps[1:]):
        assert all(bool((log.masks[b][n] <= log.masks[a][n]).all()) for n in log.masks[a])


def test_snip_under_periodic_keeps_layer_counts_and_grown_weights_start_at_zero():
    counts, grown_values = [], []

    class Spy(Callback):
        def __init__(self):
            self.before = None

        def before_step(self, state):
            self.before = {n: m.clone() for n, m in state.masks.masks.items()}

        def after_step(self, state):
            now = state.masks.masks
            counts.append({n: int(m.sum()) for n, m in now.items()})
            params = dict(state.model.named_parameters())
            for n, m in now.items():
                new = m & ~self.before[n]
                if new.any():
                    grown_values.append(params[n].detach()[new])
                    st = state.optimizer.state.get(params[n], {})
                    if "momentum_buffer" in st:
                        assert bool((st["momentum_buffer"][new] == 0).all())

    pruner, session = train("snip", "periodic", {"update_interval": 3, "grow": "pruner"}, 0.8, extra=(Spy(),))
    assert pruner.extra_results()["updates"] > 0 and pruner.extra_results()["grown_total"] > 0
    assert all(c == counts[0] for c in counts)              # constant per-layer counts: drops = grows
    assert grown_values and all(bool((v == 0).all()) for v in grown_values)


def test_synflow_under_rounds_nests_each_round_in_the_last():
    pruner, _ = train("synflow", "rounds", {"rate": 0.5, "rewind": "lr"}, 0.75, epochs=2, allocation="global",
                      pargs={"iterations": 4})
    tickets = pruner.mask_schedule.ticket_masks
    assert [round(t.density(), 3) for t in tickets] == [0.5, 0.25]
    assert all(bool((b[n] <= a[n]).all()) for a, b in zip(tickets, tickets[1:]) for n in a)


@pytest.mark.parametrize("schedule,args", [("oneshot", {"finetune_epochs": 1}),
                                           ("phases", {"warmup_epochs": 1, "phase_epochs": 1, "last_dense_epochs": 0,
                                                       "final_epochs": 2, "reference_epochs": 4}),
                                           ("gradual", {"frequency": 2}), ("periodic", {"update_interval": 2}),
                                           ("rounds", {"rate": 0.5})])
def test_every_schedule_trains_snip_end_to_end_on_a_tiny_task(schedule, args, tmp_path):
    spec = make_spec("digits-mlp", "snip", 0.75, schedule=schedule, schedule_args=args, recipe=RECIPE)
    execute(spec, tmp_path)
    rec = read_result(run_dir(tmp_path, spec.run_id))
    assert rec["status"] == "ok" and rec["schedule"] == schedule
    assert rec["pruner_family"] == SCHEDULES.get(schedule).family
    assert rec["achieved_sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert RunSpec.from_dict(spec.to_dict()).run_id == spec.run_id       # the stored spec re-validates


def test_snip_gradual_under_signin_scores_a_plain_view_and_leaves_the_factors_alone(tmp_path):
    spec = make_spec("digits-mlp", "snip", 0.8, schedule="gradual", schedule_args={"frequency": 2},
                     reparam="signin", recipe=RECIPE)
    execute(spec, tmp_path)
    rec = read_result(run_dir(tmp_path, spec.run_id))
    assert rec["status"] == "ok" and rec["achieved_sparsity"] == pytest.approx(0.8, abs=1e-3)


def test_the_run_id_hashes_a_named_schedule_only():
    plain = make_spec("digits-mlp", "gmp", 0.9)
    assert make_spec("digits-mlp", "gmp", 0.9, schedule="gradual").run_id == plain.run_id
    assert "schedule" not in plain.hashed_dict() and plain.schedule == ""
    a = make_spec("digits-mlp", "snip", 0.9, schedule="gradual")
    b = make_spec("digits-mlp", "snip", 0.9, schedule="gradual", schedule_args={"end": 0.7})
    assert len({a.run_id, b.run_id, make_spec("digits-mlp", "snip", 0.9).run_id}) == 3
    assert a.hashed_dict()["schedule"] == "gradual" and "schedule_args" not in a.hashed_dict()
    assert b.hashed_dict()["schedule_args"] == {"end": 0.7}
    assert make_spec("digits-mlp", "snip", 0.9, schedule="at_init").run_id == make_spec("digits-mlp", "snip", 0.9).run_id
    assert a.label() == "digits-mlp snip@gradual s=0.9 seed=0"


@pytest.mark.parametrize("kwargs,needle", [
    ({"pruner": "gmp", "schedule": "periodic"}, "pruner = 'magnitude', schedule = 'periodic'"),
    ({"pruner": "rigl", "schedule": "periodic", "schedule_args": {"grow": "random"}}, "preset"),
    ({"pruner": "str", "schedule": "gradual"}, "takes no schedule"),
    ({"pruner": "snip", "schedule": "gradul"}, "did you mean 'gradual'"),
    ({"pruner": "snip", "schedule_args": {"end": 0.5}}, "without a schedule"),
    ({"pruner": "snip", "schedule": "periodic", "schedule_args": {"grow": "best"}}, "grow 'best' is unknown"),
    ({"pruner": "snip", "schedule": "rounds", "schedule_args": {"rewind_epoch": 9.0}}, "beyond one round"),
    ({"pruner": "snip", "schedule": "rounds", "schedule_args": {"rewind": "lr", "rewind_epoch": 1.0}},
     "rewind = 'weights' only"),
])
def test_impossible_combinations_are_refused_in_one_line(kwargs, needle):
    with pytest.raises(ConfigError) as exc:
        make_spec("digits-mlp", sparsity=0.9, recipe={"epochs": 3}, **kwargs)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_a_grid_expands_a_list_of_schedules_with_per_schedule_args(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\ntasks = ["digits-mlp"]\nsparsities = [0.8]\nseeds = [0, 1]\n'
                    '[[pruners]]\nname = "snip"\nschedule = ["at_init", "gradual"]\n'
                    'schedule_args = { gradual = { end = 0.7 } }\n'
                    '[[pruners]]\nname = "dense"\nschedule = "gradual"\n')
    specs = load_grid(grid).specs
    assert sorted((s.pruner, s.schedule, dict(s.schedule_args).get("end")) for s in specs) == \
        [("dense", "", None)] * 2 + [("snip", "", None)] * 2 + [("snip", "gradual", 0.7)] * 2
