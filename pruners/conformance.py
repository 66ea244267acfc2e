"""The conformance kit: the checks every pruner — built-in or submitted — must pass (docs/plugins.md).

``sparsebench plugin check TARGET`` runs :func:`run_kit` for each pruner a plugin registers and prints a
pass / fail table with the reason for each check; ``sparsebench submit`` runs it before the standard
grid and refuses a pruner that fails.  The kit works on three tiny models built here — an MLP
(``mlp``: Linear layers), a small CNN with batch norm (``conv``) and a residual CNN with a skip
connection (``residual``) — and on seeded synthetic data (Gaussian inputs labelled by a fixed random
linear teacher), so it needs no dataset and runs in seconds on a CPU.

Checks (each row of the table; ``warn`` and ``skip`` do not fail a pruner):

===================  ============================================================================
``interface``        a dataclass subclass of Pruner with defaults for every hyperparameter, built and
                     ``validate()``-d from the given hyperparameters, with ``scores`` (or its own
                     ``initial_masks``); metadata strings (``warn`` if description / paper / URL are empty)
``scores``           ``scores(model, ctx)`` returns a tensor per prunable parameter, nothing else, of the
                     parameter's shape, all finite (``skip`` for pruners without ``scores``)
``masks``            the masks cover exactly the prunable parameters, with their shapes, dtype ``bool``
``density``          achieved density = target: exactly ``round(d·N)`` kept weights overall under
                     ``global``; within one weight of the allocation's count in every layer under
                     per-layer allocations (``uniform``); dense pruners keep all; learned-sparsity
                     pruners (STR, CS) report what they reach
``deterministic``    two runs with the same seed (and the same fresh model) give identical masks
``model-unchanged``  ``scores`` (and, for pruners without training callbacks, ``initial_masks``) leave
                     parameters, buffers, ``requires_grad`` and train / eval modes bit-for-bit unchanged
``no-grad-left``     no ``.grad`` is left on any parameter by scoring
``collapse``         no layer left without weights: ``fail`` under a per-layer allocation; under
                     ``global`` a collapse is a ``warn`` (the run reports it in the ``collapse`` column)
``training``         pruners with callbacks (dense-to-sparse, DST, learned sparsity): a short training
                     run through the callbacks API (below) finishes with a finite loss, valid final
                     masks and every pruned weight exactly zero
``time``             all of the above on one model within ``time_budget_s``
``cpu``              everything ran on CPU without an exception
``gpu``              the masks (and training) also work on CUDA when a GPU is present, else ``skip``
===================  ============================================================================

The short training run (:func:`train_with_callbacks`) is the suite's own session and loop
(:func:`pruners.session.build_session`, :func:`pruners.session.fit`: the enforcer first in the callback
list) with SGD (lr 0.05, momentum 0.9), no learning-rate schedule and no reparam; end-to-end runs on
real tasks are what ``sparsebench submit`` does next.  The kit trains ``pruner.total_epochs(train_epochs, sparsity)`` epochs of
``steps_per_epoch`` steps, so IMP-style pruners run all their rounds.
"""
from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pruners.allocation import ALLOCATIONS, Allocation
from pruners.base import PRUNERS, Pruner, checked_scores
from pruners.hooks import Callback, PruneContext
from pruners.session import Diverged, build_session, fit
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError, build_config

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
CHECKS = ("interface", "scores", "masks", "density", "deterministic", "model-unchanged", "no-grad-left",
          "collapse", "training", "time", "cpu", "gpu")
NUM_CLASSES = 4


# ------------------------------------------------------------------------------------------------
# tiny models and data
class TinyMLP(nn.Module):
    """16 → 32 → 32 → 4 with ReLU."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyCNN(nn.Module):
    """Conv(3→8) → BN → ReLU → Conv(8→8) → ReLU → global average pool → Linear(8→4)."""

    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


class TinyResidual(nn.Module):
    """Stem conv, one residual block (two 3×3 convs with BN, identity skip), pool, linear head."""

    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn0(self.stem(x)))
        r = F.relu(self.bn1(self.conv1(h)))
        h = F.relu(h + self.bn2(self.conv2(r)))
        return self.fc(h.mean(dim=(2, 3)))


MODELS: dict[str, type[nn.Module]] = {"mlp": TinyMLP, "conv": TinyCNN, "residual": TinyResidual}


def seed_all(seed: int) -> None:
    """Seed torch, numpy and random as the runner does before it builds a model."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass


def build_model(name: str, seed: int, device: str | torch.device = "cpu") -> nn.Module:
    seed_all(seed)
    return MODELS[name]().to(device)


def synthetic_data(model_name: str, n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded Gaussian inputs labelled by a fixed random linear teacher (learnable, roughly balanced)."""
    g = torch.Generator().manual_seed(10_007 + seed)
    shape = MODELS[model_name].input_shape
    x = torch.randn((n, *shape), generator=g)
    teacher = torch.randn((NUM_CLASSES, int(torch.tensor(shape).prod())), generator=g)
    y = (x.reshape(n, -1) @ teacher.T).argmax(dim=1)
    return x, y


def make_context(model_name: str, seed: int, device: str | torch.device, batch_size: int) -> PruneContext:
    x, y = synthetic_data(model_name, seed=seed)
    dev = torch.device(device)

    def batches(n_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = max(1, min(int(n_samples), len(y)))
        return [(x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev))
                for i in range(0, n, batch_size)]

    return PruneContext(seed=seed, batches=batches, loss_fn=F.cross_entropy, device=dev,
                        num_classes=NUM_CLASSES, input_shape=tuple(MODELS[model_name].input_shape),
                        prune_batch_size=batch_size)


# ------------------------------------------------------------------------------------------------
# the minimal training loop (callbacks API)
class KitFailure(Exception):
    """A check failed; ``check`` names it and the message is the reason."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check


class KitBatches:
    """``steps_per_epoch`` batches of ``ctx``'s data per epoch, in an order drawn from (seed, epoch)."""

    def __init__(self, ctx: PruneContext, steps_per_epoch: int) -> None:
        self.data, self.seed, self.steps = ctx.batches(10**9), ctx.seed, steps_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(self.seed * 7919 + self.epoch))
        return (self.data[int(order[i % len(self.data)])] for i in range(self.steps))


def train_with_callbacks(model: nn.Module, masks: Masks, callbacks: list[Callback], ctx: PruneContext,
                         epochs: int, steps_per_epoch: int, lr: float = 0.05) -> tuple[Masks, list[float]]:
    """Train ``model`` on ``ctx``'s data with the callbacks through the suite's session and loop
    (:func:`pruners.session.build_session`, :func:`pruners.session.fit`).

    Returns the final masks and the per-epoch train losses.  Raises KitFailure('training', ...) on a
    non-finite loss.
    """
    session = build_session(model, masks, lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9),
                            callbacks=callbacks, ctx=ctx, epochs=epochs, steps_per_epoch=steps_per_epoch)
    try:
        history = fit(session, KitBatches(ctx, steps_per_epoch), ctx.loss_fn)
    except Diverged as exc:
        raise KitFailure("training", f"the loss became {exc.loss} at step {exc.step}") from None
    return session.masks, [h["train_loss"] for h in history]


# ------------------------------------------------------------------------------------------------
# results
@dataclass
class CheckResult:
    name: str
    status: str = PASS
    reason: str = ""


@dataclass
class KitReport:
    """The outcome of the kit for one pruner."""

    pruner: str
    args: dict[str, Any]
    checks: dict[str, CheckResult] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks.values())

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks.values() if c.status == FAIL]

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(self.pruner, c.name, c.status, c.reason) for c in self.checks.values()]


@dataclass
class KitConfig:
    """How the kit runs (``sparsebench plugin check`` flags map onto these).

    Attributes:
        sparsity: the target sparsity of every check (0.8: every layer of the tiny models keeps weights
            under per-layer allocations).
        allocations: allocations every model is pruned under; the first is used for determinism.
        models: tiny models to use (``mlp``, ``conv``, ``residual``).
        seed: the seed of models, data and ``ctx``.
        time_budget_s: seconds allowed per model for all of that model's checks.
        train_epochs: recipe epochs of the short training run (pruners may multiply them).
        steps_per_epoch: optimiser steps per epoch of the short training run.
        batch_size: samples per batch (data: 256 samples).
        gpu: run the GPU check when CUDA is available.
    """

    sparsity: float = 0.8
    allocations: tuple[str, ...] = ("global", "uniform")
    models: tuple[str, ...] = ("mlp", "conv", "residual")
    seed: int = 0
    time_budget_s: float = 60.0
    train_epochs: int = 2
    steps_per_epoch: int = 4
    batch_size: int = 16
    gpu: bool = True


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" ({Path(f.filename).name}, line {f.lineno})"


def _exc_line(exc: BaseException) -> str:
    msg = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, ConfigError):
        return msg
    return f"{type(exc).__name__}: {msg}{_where(exc)}" if msg else f"{type(exc).__name__}{_where(exc)}"


def _model_state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {f"p:{n}": p.detach().clone() for n, p in model.named_parameters()}
        | {f"b:{n}": b.detach().clone() for n, b in model.named_buffers()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "modes": {n: m.training for n, m in model.named_modules()},
    }


def _state_diff(before: dict[str, Any], model: nn.Module) -> str | None:
    after = _model_state(model)
    if set(before["tensors"]) != set(after["tensors"]):
        added = sorted(set(after["tensors"]) - set(before["tensors"]))
        removed = sorted(set(before["tensors"]) - set(after["tensors"]))
        return f"changed the model's tensors (added {[a[2:] for a in added][:2]}, removed {[r[2:] for r in removed][:2]})"
    for k, v in before["tensors"].items():
        w = after["tensors"][k]
        if v.shape != w.shape or v.dtype != w.dtype or not torch.equal(v, w):
            kind = "parameter" if k.startswith("p:") else "buffer"
            return f"changed {kind} {k[2:]!r}"
    for n, rg in before["requires_grad"].items():
        if after["requires_grad"].get(n) != rg:
            return f"changed requires_grad of {n!r} to {after['requires_grad'].get(n)}"
    for n, mode in before["modes"].items():
        if after["modes"].get(n) != mode:
            return f"switched module {n or 'model'!r} to {'train' if after['modes'].get(n) else 'eval'} mode"
    return None


def _grads_left(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.grad is not None]


def _check_masks(masks: Any, model: nn.Module) -> Masks:
    """Masks over exactly the prunable parameters, right shapes, bool dtype; KitFailure('masks') if not."""
    params = prunable_parameters(model)
    if not isinstance(masks, Mapping):
        raise KitFailure("masks", f"initial_masks returned {type(masks).__name__}, not pruners.Masks")
    for n, m in masks.items():
        if not isinstance(m, torch.Tensor):
            raise KitFailure("masks", f"mask {n!r} is a {type(m).__name__}, not a tensor")
        if m.dtype != torch.bool:
            raise KitFailure("masks", f"mask {n!r} has dtype {m.dtype}, not torch.bool")
    missing = [n for n in params if n not in masks]
    extra = [n for n in masks if n not in params]
    if missing or extra:
        raise KitFailure("masks", f"masks do not cover exactly the prunable parameters (missing {missing[:2]}, "
                                  f"unexpected {extra[:2]})")
    for n, p in params.items():
        if tuple(masks[n].shape) != tuple(p.shape):
            raise KitFailure("masks", f"mask {n!r} has shape {tuple(masks[n].shape)}, expected {tuple(p.shape)}")
    return masks if isinstance(masks, Masks) else Masks(masks)


def expected_counts(allocation: Allocation, model: nn.Module, density: float) -> dict[str, int]:
    """What the allocation keeps per layer of ``model`` at ``density`` (shape-based allocations)."""
    zeros = {n: torch.zeros(p.shape) for n, p in prunable_parameters(model).items()}
    return allocation.counts(zeros, density)


def density_problem(masks: Masks, model: nn.Module, allocation_name: str, allocation: Allocation,
                    sparsity: float) -> str | None:
    """None if the achieved density meets the target under the allocation, else the reason."""
    d = 1.0 - sparsity
    counts = masks.counts()
    total = masks.total()
    kept = masks.kept()
    if allocation_name == "global":
        want = int(round(d * total))
        if kept != want:
            return (f"kept {kept} of {total} weights under global allocation, expected exactly "
                    f"round({d:g}·{total}) = {want}")
        return None
    want = expected_counts(allocation, model, d)
    for n, (k, t) in counts.items():
        if abs(k - want[n]) > 1:
            return f"layer {n!r} keeps {k} of {t} under {allocation_name} allocation, expected {want[n]} ± 1"
    return None


# ------------------------------------------------------------------------------------------------
# one pruning (and, with callbacks, training) on one model
@dataclass
class Outcome:
    masks: Masks
    seconds: float
    losses: list[float]
    trained: bool


def _stage(check: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except KitFailure:
        raise
    except Exception as exc:
        raise KitFailure(check, _exc_line(exc)) from exc


def prune_once(cls: type[Pruner], args: dict, label: str, model_name: str, allocation_name: str,
               cfg: KitConfig, device: str = "cpu", notes: dict | None = None) -> Outcome:
    """Build a fresh pruner and model, score, mask, and (with callbacks) train; KitFailure on a fault.

    ``notes`` collects non-fatal observations: ``model-unchanged`` / ``no-grad-left`` reasons.
    """
    notes = notes if notes is not None else {}
    pruner = build_config(cls, dict(args), label)
    allocation = build_config(ALLOCATIONS.get(allocation_name), {}, f"allocation {allocation_name!r}")
    model = build_model(model_name, cfg.seed, device)
    ctx = make_context(model_name, cfg.seed, device, cfg.batch_size)
    t0 = time.perf_counter()
    if type(pruner).scores is not Pruner.scores:
        before = _model_state(model)
        scores = _stage("scores", lambda: pruner.scores(model, ctx))
        _stage("scores", lambda: checked_scores(pruner, scores, model))
        diff = _state_diff(before, model)
        if diff:
            notes.setdefault("model-unchanged", f"scores() {diff} on {model_name}")
        left = _grads_left(model)
        if left:
            notes.setdefault("no-grad-left", f"scores() left .grad on {len(left)} parameter(s) "
                                             f"(e.g. {left[0]!r}) on {model_name}")
            for p in model.parameters():
                p.grad = None
    callbacks = None
    before = _model_state(model)
    masks = _stage("masks", lambda: pruner.initial_masks(model, ctx, cfg.sparsity, allocation))
    masks = _check_masks(masks, model)
    callbacks = _stage("training", lambda: list(pruner.callbacks(cfg.sparsity, allocation)))
    if not callbacks:
        diff = _state_diff(before, model)
        if diff:
            notes.setdefault("model-unchanged", f"initial_masks() {diff} on {model_name}")
        left = _grads_left(model)
        if left:
            notes.setdefault("no-grad-left", f"initial_masks() left .grad on {len(left)} parameter(s) "
                                             f"(e.g. {left[0]!r}) on {model_name}")
    losses: list[float] = []
    trained = bool(callbacks) or bool(cls.learned_sparsity)
    if trained:
        epochs = _stage("training", lambda: int(pruner.total_epochs(cfg.train_epochs, cfg.sparsity)))
        final, losses = _stage("training", lambda: train_with_callbacks(
            model, masks, callbacks or [], ctx, epochs, cfg.steps_per_epoch))
        final = _check_masks(final, model)
        if cls.learned_sparsity:
            final = final.intersection(Masks.from_model_nonzero(model))
        params = prunable_parameters(model)
        for n, m in final.items():
            alive = params[n].detach()[~m.to(params[n].device)]
            if alive.numel() and bool((alive != 0).any()):
                raise KitFailure("training", f"{int((alive != 0).sum())} pruned weights of {n!r} are not zero "
                                             f"after training on {model_name}")
        masks = final
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    return Outcome(masks=masks, seconds=time.perf_counter() - t0, losses=losses, trained=trained)


# ------------------------------------------------------------------------------------------------
# the kit
def run_kit(name: str, args: Mapping[str, Any] | None = None, config: KitConfig | None = None) -> KitReport:
    """Run every check on the registered pruner ``name`` with hyperparameters ``args``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention (and noise to the time check)
    try:
        return _run_kit(name, args, config)
    finally:
        torch.set_num_threads(threads)


def _run_kit(name: str, args: Mapping[str, Any] | None, config: KitConfig | None) -> KitReport:
    cfg = config or KitConfig()
    args = dict(args or {})
    report = KitReport(pruner=name, args=args)
    checks = report.checks
    for c in CHECKS:
        checks[c] = CheckResult(c)
    t_start = time.perf_counter()

    def fail(check: str, reason: str) -> None:
        if checks[check].status != FAIL:
            checks[check].status, checks[check].reason = FAIL, reason

    def skip_rest(reason: str) -> KitReport:
        for c in checks.values():
            if c.status == PASS and not c.reason:
                c.status, c.reason = SKIP, reason
        report.seconds = time.perf_counter() - t_start
        return report

    # interface ---------------------------------------------------------------------------------
    try:
        cls = PRUNERS.get(name)
        from pruners.plugins import check_pruner_class

        check_pruner_class(name)
        label = f"pruner {name!r}"
        build_config(cls, dict(args), label)
    except ConfigError as exc:
        fail("interface", str(exc))
        return skip_rest("interface failed")
    from pruners.plugins import pruner_metadata

    meta = pruner_metadata(name)  # plugins: version / author as recorded with their results
    empty = [a for a in ("description", "paper", "url", "version", "author") if not meta.get(a)]
    checks["interface"].reason = "dataclass, defaults, validate(), " + (
        "scores()" if cls.scores is not Pruner.scores else "initial_masks()")
    if empty:
        checks["interface"].status = WARN
        checks["interface"].reason += f"; metadata missing: {', '.join(empty)}"
    has_scores = cls.scores is not Pruner.scores
    if not has_scores:
        checks["scores"].status, checks["scores"].reason = SKIP, "no scores(): masks come from initial_masks()"

    # every model × allocation ------------------------------------------------------------------
    notes: dict[str, str] = {}
    per_model_time: dict[str, float] = {}
    achieved: list[str] = []
    collapse_warn: list[str] = []
    trained = False
    for model_name in cfg.models:
        for alloc in cfg.allocations:
            try:
                out = prune_once(cls, args, label, model_name, alloc, cfg, "cpu", notes)
            except KitFailure as kf:
                fail(kf.check, f"{kf} [{model_name}, {alloc}]")
                fail("cpu", f"{kf.check} failed on CPU")
                continue
            except ConfigError as exc:
                fail("masks", f"{exc} [{model_name}, {alloc}]")
                fail("cpu", "masks failed on CPU")
                continue
            trained = trained or out.trained
            per_model_time[model_name] = per_model_time.get(model_name, 0.0) + out.seconds
            allocation = build_config(ALLOCATIONS.get(alloc), {}, f"allocation {alloc!r}")
            model = build_model(model_name, cfg.seed)
            if not cls.uses_sparsity:
                if out.masks.kept() != out.masks.total():
                    fail("density", f"dense pruner pruned {out.masks.total() - out.masks.kept()} weights "
                                    f"[{model_name}]")
            elif cls.learned_sparsity:
                achieved.append(f"{model_name}/{alloc} {100 * out.masks.sparsity():.1f}%")
            else:
                problem = density_problem(out.masks, model, alloc, allocation, cfg.sparsity)
                if problem:
                    fail("density", f"{problem} [{model_name}]")
            collapsed = out.masks.collapsed_layers()
            if collapsed:
                if alloc == "global" or cls.learned_sparsity:
                    collapse_warn.append(f"{collapsed[0]} on {model_name}/{alloc}")
                else:
                    fail("collapse", f"layer {collapsed[0]!r} has no weights left under {alloc} allocation "
                                     f"[{model_name}]")
            if alloc == cfg.allocations[0]:
                try:
                    again = prune_once(cls, args, label, model_name, alloc, cfg, "cpu", {})
                except (KitFailure, ConfigError) as exc:
                    fail("deterministic", f"the second run with the same seed failed: {exc} [{model_name}]")
                else:
                    per_model_time[model_name] += again.seconds
                    if not out.masks.equal(again.masks):
                        diff = sum(int((out.masks[n] ^ again.masks[n]).sum()) for n in out.masks)
                        fail("deterministic", f"masks differ in {diff} entries between two runs with seed "
                                              f"{cfg.seed} [{model_name}, {alloc}]")
    for check in ("model-unchanged", "no-grad-left"):
        if check in notes:
            fail(check, notes[check])
    if checks["density"].status == PASS:
        if not cls.uses_sparsity:
            checks["density"].reason = "dense: keeps every weight"
        elif cls.learned_sparsity:
            checks["density"].status = WARN if not achieved else PASS
            checks["density"].reason = "learned sparsity, reported: " + ", ".join(achieved[:3])
        else:
            checks["density"].reason = (f"target {100 * cfg.sparsity:g}% met: exact overall (global), "
                                        "±1 weight per layer (per-layer)")
    if checks["collapse"].status == PASS and collapse_warn:
        checks["collapse"].status = WARN
        checks["collapse"].reason = f"layer {collapse_warn[0]} collapsed (reported in the result's collapse column)"
    if not trained and checks["training"].status == PASS:
        checks["training"].status, checks["training"].reason = SKIP, "no training callbacks (pruning at init)"
    elif checks["training"].status == PASS:
        checks["training"].reason = "callbacks ran; final masks valid; pruned weights zero"
    slow = {m: t for m, t in per_model_time.items() if t > cfg.time_budget_s}
    if slow:
        m, t = max(slow.items(), key=lambda kv: kv[1])
        fail("time", f"took {t:.1f}s on {m}, over the budget of {cfg.time_budget_s:g}s per model")
    elif per_model_time:
        checks["time"].reason = f"slowest model {max(per_model_time.values()):.2f}s (budget {cfg.time_budget_s:g}s)"
    if checks["cpu"].status == PASS:
        checks["cpu"].reason = f"{len(cfg.models)} models × {len(cfg.allocations)} allocations"

    # GPU -----------------------------------------------------------------------------------------
    if not (cfg.gpu and torch.cuda.is_available()):
        checks["gpu"].status, checks["gpu"].reason = SKIP, "no CUDA GPU on this machine"
    else:
        for model_name in cfg.models[:2]:
            alloc = cfg.allocations[0]
            try:
                out = prune_once(cls, args, label, model_name, alloc, cfg, "cuda", {})
            except (KitFailure, ConfigError) as exc:
                fail("gpu", f"{exc} [{model_name}, cuda]")
                continue
            if cls.uses_sparsity and not cls.learned_sparsity:
                allocation = build_config(ALLOCATIONS.get(alloc), {}, f"allocation {alloc!r}")
                problem = density_problem(out.masks, build_model(model_name, cfg.seed), alloc, allocation,
                                          cfg.sparsity)
                if problem:
                    fail("gpu", f"{problem} [{model_name}, cuda]")
        if checks["gpu"].status == PASS:
            checks["gpu"].reason = f"ran on {torch.cuda.get_device_name(0)}"
    for c in checks.values():
        if c.status == PASS and not c.reason:
            c.reason = "ok"
    report.seconds = time.perf_counter() - t_start
    return report


def format_reports(reports: list[KitReport], fmt: str = "plain") -> str:
    """The pass / fail table of one or more reports."""
    from tabulate import tabulate

    rows = [r for rep in reports for r in rep.rows()]
    return tabulate(rows, headers=["pruner", "check", "result", "reason"], tablefmt=fmt)


def first_failure(report: KitReport) -> str:
    """One line: ``check 'x' failed: reason`` for the first failing check ('' if it passed)."""
    for c in report.failures():
        return f"pruner {report.pruner!r} fails the conformance check {c.name!r}: {c.reason}"
    return ""
