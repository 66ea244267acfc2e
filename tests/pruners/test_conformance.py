"""The conformance kit: every built-in pruner, schedule and reparam passes (through the kit's own pytest
form, :func:`pruners.testing.parametrize_with_checks`); each kind of fault fails the right check."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from pruners import PRUNERS, SCHEDULES, Callback, Masks, Pruner, prunable_parameters
from pruners.allocation import ALLOCATIONS
from pruners.conformance import (CHECKS, FAIL, PASS, SKIP, WARN, KitConfig, Target, build_model, density_problem,
                                 make_context, outcome, train_with_callbacks)
from pruners.testing import parametrize_with_checks
from reparam import REPARAMS

FAST = KitConfig(models=("mlp", "conv"), allocations=("global", "uniform"), gpu=False)


def kit(name: str, args: dict | None = None, config: KitConfig = FAST) -> dict[str, tuple[str, str]]:
    """check -> (status, reason) for ``name`` (a pruner, ``schedule:NAME`` or ``reparam:NAME``)."""
    target = Target.of(name, args)
    return {c: outcome(target, c, config) for c in CHECKS}


def table(report: dict) -> str:
    return "\n".join(f"{c}: {s} {r}" for c, (s, r) in report.items())


# ------------------------------------------------------------------------------------------------
# every built-in passes, run as a plugin author runs the kit
BUILTINS = [n for n in PRUNERS.names() if PRUNERS.origin(n) == "built-in"]
BUILTIN_AXES = ([f"schedule:{n}" for n in SCHEDULES.names() if SCHEDULES.origin(n) == "built-in"]
                + [f"reparam:{n}" for n in REPARAMS.names() if REPARAMS.origin(n) == "built-in" and n != "none"])


# generous time budget: a loaded CI machine must not turn this into a timing test
@parametrize_with_checks(BUILTINS, config=KitConfig(time_budget_s=600.0))
def test_every_builtin_pruner_passes_the_kit(target, check):
    check(target)


@parametrize_with_checks(BUILTIN_AXES, config=KitConfig(models=("mlp", "conv"), time_budget_s=600.0))
def test_every_builtin_schedule_and_reparam_passes_the_kit(target, check):
    check(target)


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
    report = kit(name)
    assert report[check][0] == FAIL, table(report)
    assert reason in report[check][1]
    assert report[check][1].count("\n") == 0


def test_time_budget(register):
    name = register("kit-slow", Slow)
    report = kit(name, config=KitConfig(models=("mlp",), allocations=("global",), time_budget_s=0.01, gpu=False))
    assert report["time"][0] == FAIL
    assert "over the budget of 0.01s" in report["time"][1]


def test_interface_failure_skips_the_rest(register):
    @dataclass
    class NoScores(Pruner):
        pass

    name = register("kit-noscores", NoScores)
    report = kit(name)
    assert report["interface"][0] == FAIL
    assert "has no scores() method" in report["interface"][1]
    assert {s for c, (s, _) in report.items() if c != "interface"} == {SKIP}


def test_bad_hyperparameters_fail_the_interface_check():
    report = kit("magnitude", {"power": 2})
    assert report["interface"][0] == FAIL
    assert "has no hyperparameter 'power'" in report["interface"][1]


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
    report = kit(name, config=KitConfig(models=("mlp",), allocations=("global",), gpu=False))
    assert FAIL not in {s for s, _ in report.values()}
    assert report["collapse"][0] == WARN
    assert "net.0.weight" in report["collapse"][1]


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
    final, losses, theta = train_with_callbacks(model, masks, [Recorder()], make_context("mlp", 0, "cpu", 16),
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


# ------------------------------------------------------------------------------------------------
# schedules and reparams of plugins (issue 19 (7)): their faults fail the right check
@pytest.fixture
def register_axis():
    from reparam import Reparam  # noqa: F401  (the registries below)

    added: list[tuple] = []

    def add(registry, name: str, cls: type) -> None:
        registry.add(name, cls, origin="test")
        added.append((registry, name))

    yield add
    for registry, name in added:
        registry.unregister(name)


class _Densify(Callback):
    """Grows every weight back at the end of training: the final masks are dense."""

    def on_end(self, state):
        state.masks.update(Masks({n: torch.ones_like(m) for n, m in state.masks.masks.items()}), state.optimizer)


def test_a_schedule_that_misses_its_target_fails_density(register_axis):
    from pruners import Schedule

    @dataclass
    class Forgets(Schedule):
        description = "prunes at init, then grows everything back"

        def callbacks(self, pruner, sparsity, allocation):
            return [_Densify()]

    register_axis(SCHEDULES, "kit-forgets", Forgets)
    report = kit("schedule:kit-forgets")
    assert report["density"][0] == FAIL, table(report)
    assert "expected exactly" in report["density"][1]
    assert report["interface"][0] == PASS and report["scores"][0] == SKIP


class _ReviveTheta(Callback):
    def after_step(self, state):
        with torch.no_grad():
            for p in prunable_parameters(state.model).values():
                p.add_(0.01)


def test_a_reparam_that_revives_pruned_weights_fails_training_and_one_without_kind_warns(register_axis):
    from reparam import Reparam

    @dataclass
    class Leaky(Reparam):
        description = "adds 0.01 to every weight after each step"

        def callbacks(self):
            return [_ReviveTheta()]

    register_axis(REPARAMS, "kit-leaky", Leaky)
    report = kit("reparam:kit-leaky", config=KitConfig(models=("mlp",), allocations=("global",), gpu=False))
    assert report["training"][0] == FAIL, table(report)
    assert "pruned weights of" in report["training"][1]
    assert report["interface"][0] == WARN and "cannot be stacked" in report["interface"][1]


def test_a_broken_plugin_fails_its_parametrised_tests_by_check_name(tmp_path):
    """The pytest form in a plugin author's own suite: one test per check, ids ``<target>-<check>``."""
    import subprocess
    import sys

    (tmp_path / "test_mine.py").write_text(
        "from dataclasses import dataclass\n"
        "from pruners import Masks, Pruner, register_pruner\n"
        "from pruners.conformance import KitConfig\n"
        "from pruners.testing import parametrize_with_checks\n\n"
        "@register_pruner('kit-float-masks')\n@dataclass\nclass FloatMasks(Pruner):\n"
        "    description = 'returns float masks'\n"
        "    def initial_masks(self, model, ctx, sparsity, allocation):\n"
        "        s = {n: p.detach().abs() for n, p in model.named_parameters() if n.endswith('weight')}\n"
        "        return {n: m.float() for n, m in allocation.masks(s, 1 - sparsity).items()}\n\n"
        "@parametrize_with_checks(['kit-float-masks'], config=KitConfig(models=('mlp',), gpu=False))\n"
        "def test_conformance(target, check):\n    check(target)\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-rfs", str(tmp_path / "test_mine.py")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "FAILED test_mine.py::test_conformance[kit-float-masks-masks]" in out
    assert "conformance check 'masks' failed: mask" in out and "not torch.bool" in out
    assert "FAILED test_mine.py::test_conformance[kit-float-masks-cpu]" in out   # masks failed on CPU
    assert "2 failed" in out and "skipped" in out     # the rest is skipped or passes
