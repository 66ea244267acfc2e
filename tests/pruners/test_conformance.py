"""The conformance kit: every registered built-in passes; each kind of fault fails the right check."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from pruners import PRUNERS, Callback, Masks, Pruner, prunable_parameters
from pruners.allocation import ALLOCATIONS
from pruners.conformance import (CHECKS, FAIL, PASS, SKIP, WARN, KitConfig, build_model, density_problem,
                                 format_reports, make_context, run_kit, train_with_callbacks)

FAST = KitConfig(models=("mlp", "conv"), allocations=("global", "uniform"), gpu=False)


# ------------------------------------------------------------------------------------------------
# every built-in pruner passes
BUILTINS = [n for n in PRUNERS.names() if PRUNERS.origin(n) == "built-in"]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_pruner_passes_the_kit(name):
    # generous time budget: a loaded CI machine must not turn this into a timing test
    report = run_kit(name, config=KitConfig(time_budget_s=600.0))
    assert report.passed, format_reports([report])
    assert list(report.checks) == list(CHECKS)
    assert report.checks["cpu"].status == PASS


# ------------------------------------------------------------------------------------------------
# faulty pruners, registered for one test each
@pytest.fixture
def register():
    added: list[str] = []

    def add(name: str, cls: type) -> str:
        PRUNERS.add(name, cls, origin="test")
        added.append(name)
        return name

    yield add
    for name in added:
        PRUNERS.unregister(name)


def magnitudes(model):
    return {n: p.detach().abs().clone() for n, p in prunable_parameters(model).items()}


@dataclass
class LeavesGrads(Pruner):
    def scores(self, model, ctx):
        x, y = ctx.batches(16)[0]
        ctx.loss_fn(model(x), y).backward()
        return {n: (p * p.grad).detach().abs() for n, p in prunable_parameters(model).items()}


@dataclass
class ChangesWeights(Pruner):
    def scores(self, model, ctx):
        with torch.no_grad():
            for p in prunable_parameters(model).values():
                p.mul_(2.0)
        return magnitudes(model)


@dataclass
class ChangesBatchNormStats(Pruner):
    """Runs forward passes in train mode: batch-norm running statistics move."""

    def scores(self, model, ctx):
        with torch.no_grad():
            model(ctx.batches(16)[0][0])
        return magnitudes(model)


_counter = itertools.count()


@dataclass
class NotDeterministic(Pruner):
    def scores(self, model, ctx):
        g = torch.Generator().manual_seed(next(_counter))
        return {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}


@dataclass
class KeepsTooMany(Pruner):
    def initial_masks(self, model, ctx, sparsity, allocation):
        m = dict(allocation.masks(magnitudes(model), 1.0 - sparsity))
        first = next(iter(m))
        m[first] = torch.ones_like(m[first])
        return Masks(m)


@dataclass
class CollapsesFirstLayer(Pruner):
    def initial_masks(self, model, ctx, sparsity, allocation):
        m = dict(allocation.masks(magnitudes(model), 1.0 - sparsity))
        first = next(iter(m))
        m[first] = torch.zeros_like(m[first])
        return Masks(m)


@dataclass
class FloatMasks(Pruner):
    def initial_masks(self, model, ctx, sparsity, allocation):
        return {n: m.float() for n, m in allocation.masks(magnitudes(model), 1.0 - sparsity).items()}


@dataclass
class MissesALayer(Pruner):
    def scores(self, model, ctx):
        s = magnitudes(model)
        s.pop(next(iter(s)))
        return s


@dataclass
class Slow(Pruner):
    def scores(self, model, ctx):
        time.sleep(0.05)
        return magnitudes(model)


class _Revive(Callback):
    def after_step(self, state):
        with torch.no_grad():
            for p in prunable_parameters(state.model).values():
                p.add_(0.01)


@dataclass
class RevivesPrunedWeights(Pruner):
    family = "dense-to-sparse"

    def scores(self, model, ctx):
        return magnitudes(model)

    def callbacks(self, sparsity, allocation):
        return [_Revive()]


FAULTS = [
    (LeavesGrads, "no-grad-left", "left .grad"),
    (ChangesWeights, "model-unchanged", "changed parameter"),
    (ChangesBatchNormStats, "model-unchanged", "changed buffer"),
    (NotDeterministic, "deterministic", "masks differ"),
    (KeepsTooMany, "density", "expected exactly"),
    (CollapsesFirstLayer, "collapse", "has no weights left under uniform"),
    (FloatMasks, "masks", "dtype torch.float32, not torch.bool"),
    (MissesALayer, "scores", "do not match the prunable parameters"),
    (RevivesPrunedWeights, "training", "pruned weights of"),
]


@pytest.mark.parametrize("cls, check, reason", FAULTS, ids=[f[0].__name__ for f in FAULTS])
def test_each_fault_fails_its_check_with_a_reason(register, cls, check, reason):
    name = register(f"kit-{cls.__name__.lower()}", cls)
    report = run_kit(name, config=FAST)
    assert not report.passed
    assert report.checks[check].status == FAIL, format_reports([report])
    assert reason in report.checks[check].reason
    assert report.checks[check].reason.count("\n") == 0


def test_time_budget(register):
    name = register("kit-slow", Slow)
    report = run_kit(name, config=KitConfig(models=("mlp",), allocations=("global",), time_budget_s=0.01,
                                            gpu=False))
    assert report.checks["time"].status == FAIL
    assert "over the budget of 0.01s" in report.checks["time"].reason


def test_interface_failure_skips_the_rest(register):
    @dataclass
    class NoScores(Pruner):
        pass

    name = register("kit-noscores", NoScores)
    report = run_kit(name, config=FAST)
    assert report.checks["interface"].status == FAIL
    assert "has no scores() method" in report.checks["interface"].reason
    assert {c.status for n, c in report.checks.items() if n != "interface"} == {SKIP}


def test_bad_hyperparameters_fail_the_interface_check():
    report = run_kit("magnitude", {"power": 2}, config=FAST)
    assert report.checks["interface"].status == FAIL
    assert "has no hyperparameter 'power'" in report.checks["interface"].reason


def test_global_collapse_is_a_warning_not_a_failure(register):
    @dataclass
    class GlobalCollapse(Pruner):
        """Scores the first layer below everything else: global allocation empties it at 80 %."""

        def scores(self, model, ctx):
            s = magnitudes(model)
            first = next(iter(s))
            s[first] = s[first] - 100.0
            return s

    name = register("kit-globalcollapse", GlobalCollapse)
    report = run_kit(name, config=KitConfig(models=("mlp",), allocations=("global",), gpu=False))
    assert report.passed
    assert report.checks["collapse"].status == WARN
    assert "net.0.weight" in report.checks["collapse"].reason


# ------------------------------------------------------------------------------------------------
# the pieces
def test_density_rule_by_hand():
    model = build_model("mlp", 0)  # layers 32·16 = 512, 32·32 = 1024, 4·32 = 128: N = 1664
    shapes = {n: p.shape for n, p in prunable_parameters(model).items()}
    names = list(shapes)

    def masks_with(counts):
        out = {}
        for n, k in zip(names, counts):
            flat = torch.zeros(shapes[n].numel(), dtype=torch.bool)
            flat[:k] = True
            out[n] = flat.view(shapes[n])
        return Masks(out)

    glob, unif = ALLOCATIONS.get("global")(), ALLOCATIONS.get("uniform")()
    # global at density 0.2: exactly round(0.2 · 1664) = 333 kept, wherever they are
    assert density_problem(masks_with([300, 33, 0]), model, "global", glob, 0.8) is None
    assert "expected exactly round(0.2·1664) = 333" in density_problem(masks_with([300, 34, 0]), model, "global",
                                                                      glob, 0.8)
    # uniform at 0.2: 102.4 → 102, 204.8 → 205, 25.6 → 26 per layer, ±1 allowed
    assert density_problem(masks_with([103, 204, 26]), model, "uniform", unif, 0.8) is None
    assert "keeps 100 of 512" in density_problem(masks_with([100, 205, 26]), model, "uniform", unif, 0.8)


def test_training_loop_calls_callbacks_in_the_order_of_the_suite_loop():
    events: list[str] = []

    class Recorder(Callback):
        def on_start(self, s): events.append("start")
        def on_epoch_start(self, s): events.append(f"epoch{s.epoch}")
        def before_step(self, s): events.append(f"before{s.step}")
        def after_step(self, s): events.append(f"after{s.step}")
        def on_epoch_end(self, s): events.append("epoch_end")
        def on_end(self, s): events.append("end")

    model = build_model("mlp", 0)
    masks = ALLOCATIONS.get("uniform")().masks(magnitudes(model), 0.5)
    final, losses = train_with_callbacks(model, masks, [Recorder()], make_context("mlp", 0, "cpu", 16),
                                         epochs=2, steps_per_epoch=2)
    assert events == ["start", "epoch0", "before0", "after0", "before1", "after1", "epoch_end",
                      "epoch1", "before2", "after2", "before3", "after3", "epoch_end", "end"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))  # one mean train loss per epoch
    assert all(torch.equal(final[n], masks[n]) for n in masks)
    for n, p in prunable_parameters(model).items():  # the enforcer kept pruned weights at zero
        assert bool((p.detach()[~masks[n]] == 0).all())


def test_tiny_models_have_linear_conv_and_a_residual_connection():
    kinds = {name: {type(m) for m in build_model(name, 0).modules()} for name in ("mlp", "conv", "residual")}
    assert nn.Linear in kinds["mlp"] and nn.Conv2d not in kinds["mlp"]
    assert nn.Conv2d in kinds["conv"] and nn.BatchNorm2d in kinds["conv"]
    res = build_model("residual", 0).eval()
    x = make_context("residual", 0, "cpu", 8).batches(8)[0][0]
    # with the block's second conv zeroed (and fresh eval-mode batch norm: bn2(0) = 0) only the skip path
    # is left: output = fc(mean(relu(bn0(stem(x)))))
    with torch.no_grad():
        res.conv2.weight.zero_()
        want = res.fc(torch.relu(res.bn0(res.stem(x))).mean(dim=(2, 3)))
        torch.testing.assert_close(res(x), want)
