"""oneshot, imp / lrr, gmp, acdc: schedules against their formulas, rewinding, bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.runner import execute
from benchmark.spec import make_spec
from pruners.session import build_session, fit
from pruners import ALLOCATIONS, PRUNERS, Callback, ConfigError, PruneContext
from pruners.schedules.rounds import round_densities
from pruners.registry import build_config
from pruners.schedules import cubic_sparsity



def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def run_loop(pruner_name: str, args: dict, sparsity: float, epochs: int, steps_per_epoch: int = 5,
             allocation: str = "global", extra: tuple[Callback, ...] = (), seed: int = 0):
    """The runner's wiring (initial masks → enforcer → optimiser → callbacks → train) on a toy problem."""
    model = tiny_model(seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(steps_per_epoch * 16, 8, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    loader = [(X[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]) for i in range(steps_per_epoch)]
    pruner = build_config(PRUNERS.get(pruner_name), args, pruner_name)
    alloc = build_config(ALLOCATIONS.get(allocation), {}, allocation)
    ctx = PruneContext(seed=seed, batches=None, loss_fn=F.cross_entropy, device=torch.device("cpu"),
                       num_classes=3, input_shape=(8,))
    masks = pruner.initial_masks(model, ctx, sparsity, alloc)
    session = build_session(model, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), pruner=pruner,
                            allocation=alloc, sparsity=sparsity, callbacks=extra, ctx=ctx,
                            epochs=pruner.total_epochs(epochs, sparsity), steps_per_epoch=steps_per_epoch)
    history = fit(session, loader, F.cross_entropy, test_batches=loader[:1])
    return pruner, session.state, history


N_TINY = 8 * 24 + 24 * 16 + 16 * 3


# --- GMP ------------------------------------------------------------------------------------------
def test_cubic_formula_by_hand():
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with s_i = 0.1, s_f = 0.9, t0 = 10, n dt = 40
    assert cubic_sparsity(10, 0.1, 0.9, 10, 50) == pytest.approx(0.1)
    assert cubic_sparsity(30, 0.1, 0.9, 10, 50) == pytest.approx(0.9 - 0.8 * 0.125)
    assert cubic_sparsity(40, 0.1, 0.9, 10, 50) == pytest.approx(0.9 - 0.8 * 0.25 ** 3)
    assert cubic_sparsity(50, 0.1, 0.9, 10, 50) == 0.9 and cubic_sparsity(80, 0.1, 0.9, 10, 50) == 0.9
    assert cubic_sparsity(3, 0.1, 0.9, 10, 50) == 0.1


def test_gmp_density_follows_cubic_schedule_at_every_update():
    densities = {}

    class Spy(Callback):
        def after_step(self, state):
            densities[state.step + 1] = state.masks.masks.sparsity()

    pruner, state, _ = run_loop("gmp", {"start": 0.1, "end": 0.7, "frequency": 3}, 0.9, epochs=8, extra=(Spy(),))
    T = state.total_steps                                   # 40
    t0, t_end = round(0.1 * T), round(0.7 * T)               # 4, 28
    expected_steps = sorted({*range(t0, t_end + 1, 3), t_end})
    log = pruner.extra_results()["schedule"]
    assert [t for t, _, _ in log] == expected_steps
    for t, s_sched, s_achieved in log:
        s_formula = 0.9 + (0.0 - 0.9) * (1 - (t - t0) / (t_end - t0)) ** 3
        assert s_sched == pytest.approx(s_formula)
        assert abs(s_achieved - s_formula) <= 1.0 / N_TINY + 1e-12      # within one weight
        assert densities[t] == pytest.approx(s_achieved)
    assert state.masks.masks.sparsity() == pytest.approx(0.9, abs=1.0 / N_TINY)
    # masks are nested: sparsity never decreases
    seq = [densities[t] for t in sorted(densities)]
    assert all(b >= a - 1e-12 for a, b in zip(seq, seq[1:]))


# --- IMP / LRR ------------------------------------------------------------------------------------
def test_round_densities_hit_target_exactly():
    assert round_densities(0.2, 0.64) == pytest.approx([0.8, 0.64])
    d = round_densities(0.2, 0.05)
    n = math.ceil(math.log(0.05) / math.log(0.8))
    assert len(d) == n and d[-1] == 0.05 and d[:-1] == pytest.approx([0.8 ** r for r in range(1, n)])
    assert round_densities(0.5, 1.0) == []


class RoundSpy(Callback):
    """Records the weights after every step and right after each round's pruning / rewinding."""

    def __init__(self):
        self.after = {}
        self.round_start = {}

    def after_step(self, state):
        self.after[state.step + 1] = {n: p.detach().clone() for n, p in state.model.named_parameters()}

    def on_epoch_start(self, state):
        self.round_start[state.epoch] = ({n: p.detach().clone() for n, p in state.model.named_parameters()},
                                         state.masks.masks)
        self.momentum = getattr(self, "momentum", {})
        self.momentum[state.epoch] = [st["momentum_buffer"].clone() for st in state.optimizer.state.values()
                                      if st.get("momentum_buffer") is not None]


def test_imp_density_per_round_and_rewind_restores_theta_k():
    spy = RoundSpy()
    pruner, state, _ = run_loop("imp", {"rate": 0.5, "rewind_epoch": 0.4}, 0.8, epochs=2, extra=(spy,))
    ex = pruner.extra_results()
    k = round(0.4 * 5)
    assert ex["rewind_step"] == k and ex["rounds"] == 4 and state.epochs == 8
    for r, (d, target) in enumerate(zip(ex["round_density"], ex["round_target_density"]), 1):
        assert target == pytest.approx(0.5 ** r if r < 3 else 0.2)
        assert abs(d - target) <= 1.0 / N_TINY + 1e-12
    theta_k = spy.after[k]
    for epoch in (2, 4, 6):                     # round starts
        weights, masks = spy.round_start[epoch]
        for name, m in masks.items():
            # surviving entries hold exactly θ_k, pruned ones are zero
            assert torch.equal(weights[name][m], theta_k[name][m])
            assert bool((weights[name][~m] == 0).all())
        for name in ("0.bias", "2.bias"):      # non-prunable parameters are rewound as well
            assert torch.equal(weights[name], theta_k[name])
    assert len(pruner.mask_schedule.ticket_masks) == 3


def test_lrr_keeps_trained_weights_and_restarts_rounds():
    spy = RoundSpy()
    pruner, state, _ = run_loop("lrr", {"rate": 0.5}, 0.75, epochs=2, extra=(spy,))
    ex = pruner.extra_results()
    assert ex["rewind_step"] is None and ex["rounds"] == 3
    for epoch in (2, 4):
        weights, masks = spy.round_start[epoch]
        before = spy.after[epoch * 5]          # weights at the end of the previous round
        for name, m in masks.items():
            assert torch.equal(weights[name][m], before[name][m])
    for epoch in (2, 4):                        # optimiser state is reset at every round start
        assert spy.momentum[epoch] and all(bool((b == 0).all()) for b in spy.momentum[epoch])
    assert pruner.lr_cycle_epochs(2, 0.75) == 2 and pruner.total_epochs(2, 0.75) == 6


# --- oneshot --------------------------------------------------------------------------------------
def test_oneshot_prunes_once_before_finetuning():
    pruner, state, hist = run_loop("oneshot", {"finetune_epochs": 2}, 0.9, epochs=3)
    assert state.epochs == 5
    ex = pruner.extra_results()
    assert ex["prune_epoch"] == 3 and ex["prune_step"] == 15
    assert abs(state.masks.masks.sparsity() - 0.9) <= 1.0 / N_TINY


# --- AC/DC ----------------------------------------------------------------------------------------
def test_acdc_documented_plan_on_100_epochs():
    acdc = build_config(PRUNERS.get("acdc"), {}, "acdc")
    sw = acdc.mask_schedule.switch_steps(100, 1)
    expected = {10: "C", 85: "C", 75: "D"}
    for e in range(10, 75, 10):
        expected[e] = "C"
        expected[e + 5] = "D"
    expected[75] = "D"
    assert sw == expected
    # scaled to a 10-epoch recipe with 10 steps per epoch: the same proportions in steps
    assert acdc.mask_schedule.switch_steps(10, 10) == {10 * k // 10: v for k, v in expected.items()}


def test_acdc_alternates_masks_on_those_steps():
    densities = {}

    class Spy(Callback):
        def after_step(self, state):
            densities[state.step + 1] = state.masks.masks.density()

    pruner, state, _ = run_loop("acdc", {"warmup_epochs": 2, "phase_epochs": 2, "last_dense_epochs": 2,
                                         "final_epochs": 4, "reference_epochs": 18, "scale": False}, 0.9,
                                epochs=18, steps_per_epoch=2, extra=(Spy(),))
    # plan (epochs): D 0-2 | C 2-4, D 4-6, C 6-8, D 8-10, C 10-12 | D 12-14 (last dense) | C 14-18 (final)
    log = pruner.extra_results()["switches"]
    assert [(t, k) for t, k, _ in log] == [(4, "C"), (8, "D"), (12, "C"), (16, "D"), (20, "C"), (24, "D"),
                                           (28, "C")]
    for t in range(1, 37):
        phase = "D" if t < 4 else [k for s, k, _ in log if s <= t][-1]
        assert (densities[t] == 1.0) if phase == "D" else abs(densities[t] - 0.1) <= 1.0 / N_TINY
    for t, k, d in log:
        assert (d == 1.0) if k == "D" else abs(d - 0.1) <= 1.0 / N_TINY


def test_acdc_bad_plan_is_config_error():
    with pytest.raises(ConfigError, match="acdc phase plan does not fit"):
        make_spec("digits-mlp", "acdc", 0.9, pruner_args={"scale": False}, recipe={"epochs": 30})
    make_spec("digits-mlp", "acdc", 0.9, recipe={"epochs": 7})          # scaled: always fits


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pruner,args,match", [
    ("imp", {"rate": 1.5}, "outside \\(0, 1\\)"),
    ("lrr", {"rate": 0.0}, "outside \\(0, 1\\)"),
    ("gmp", {"frequency": 0}, "positive"),
    ("gmp", {"start": 0.5, "end": 0.5}, "must be after start"),
    ("oneshot", {"finetune_epochs": -1}, ">= 0"),
])
def test_bad_hyperparameters(pruner, args, match):
    with pytest.raises(ConfigError, match=match):
        make_spec("digits-mlp", pruner, 0.9, pruner_args=args)


def test_rewind_beyond_training_is_config_error():
    with pytest.raises(ConfigError, match="rewind_epoch 3 is beyond"):
        make_spec("digits-mlp", "imp", 0.9, pruner_args={"rewind_epoch": 3.0}, recipe={"epochs": 3})


# --- end to end through the runner ----------------------------------------------------------------
@pytest.mark.parametrize("name,args", [("imp", {"rate": 0.6, "rewind_epoch": 0.5}), ("gmp", {"frequency": 4}),
                                       ("oneshot", {"finetune_epochs": 1}), ("acdc", {})])
def test_runner_reports_achieved_sparsity(tmp_path, name, args):
    spec = make_spec("digits-mlp", name, 0.9, pruner_args=args, recipe={"epochs": 2, "max_train_batches": 6})
    rec = execute(spec, tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert rec["learned_sparsity"] is False and rec["extra"]
    assert 0 < rec["train_flops_rel"] <= 1.0


def test_imp_keeps_every_rounds_ticket_and_the_rewind_weights_in_the_run_folder(tmp_path):
    from benchmark.runfolder import run_dir
    from pruners import Masks

    spec = make_spec("digits-mlp", "imp", 0.9, pruner_args={"rate": 0.6, "rewind_epoch": 0.5},
                     recipe={"epochs": 2, "max_train_batches": 6})
    rec = execute(spec, tmp_path)
    folder = run_dir(tmp_path, spec.run_id)
    rounds = rec["extra"]["rounds"]
    tickets = sorted(folder.glob("ticket_round*.pt"))
    assert len(tickets) == rounds - 1 >= 2        # one ticket per pruning step (rounds 1 … n)
    densities = [Masks.load(t).density() for t in sorted(tickets, key=lambda p: int(p.stem[12:]))]
    assert densities == sorted(densities, reverse=True) and densities[-1] == pytest.approx(0.1, abs=1e-3)
    rewind = torch.load(folder / "rewind_weights.pt")
    assert set(rewind) == set(torch.load(folder / "model.pt"))
