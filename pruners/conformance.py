"""The conformance kit: the checks every pruner, schedule and reparam — built-in or submitted — must
pass (docs/plugins.md).

The checks are pytest tests (:mod:`pruners.testing`: ``parametrize_with_checks`` for a plugin's own
suite; ``sparsebench plugin check`` and ``submit`` run the same tests through ``pytest.main``).  This
module holds what they look at: the kit works on three tiny models built here — an MLP
(``mlp``: Linear layers), a small CNN with batch norm (``conv``) and a residual CNN with a skip
connection (``residual``) — and on seeded synthetic data (Gaussian inputs labelled by a fixed random
linear teacher), so it needs no dataset and runs in seconds on a CPU.  :func:`evidence` prunes (and
trains) every model × allocation once per target; each check in :data:`CHECK_FUNCTIONS` reads it.
A schedule is checked with the magnitude score, a reparam under random masks.

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
``deterministic``    two runs with the same seed (and the same fresh model) give identical masks (and,
                     when trained, identical trained weights)
``model-unchanged``  ``scores`` (and, for pruners without training callbacks, ``initial_masks``) leave
                     parameters, buffers, ``requires_grad`` and train / eval modes bit-for-bit unchanged
``no-grad-left``     no ``.grad`` is left on any parameter by scoring
``collapse``         no layer left without weights: ``fail`` under a per-layer allocation; under
                     ``global`` a collapse is a ``warn`` (the run reports it in the ``collapse`` column)
``training``         pruners with callbacks (dense-to-sparse, DST, learned sparsity), schedules and
                     reparams: a short training run (below) finishes with a finite loss, valid final
                     masks and every pruned merged weight θ exactly zero
``time``             all of the above on one model within ``time_budget_s``
``cpu``              everything ran on CPU without an exception
``gpu``              the masks (and training) also work on CUDA when a GPU is present, else ``skip``
===================  ============================================================================

The short training run (:func:`train_with_callbacks`) is the suite's own session and loop
(:func:`pruners.session.build_session`, :func:`pruners.session.fit`: the enforcer first in the callback
list) with SGD (lr 0.05, momentum 0.9), no learning-rate schedule and the target's reparam if any; end-to-end runs on
real tasks are what ``sparsebench submit`` does next.  The kit trains ``pruner.total_epochs(train_epochs, sparsity)`` epochs of
``steps_per_epoch`` steps, so IMP-style pruners run all their rounds.
"""
from __future__ import annotations

import json
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
                         epochs: int, steps_per_epoch: int, lr: float = 0.05, reparam: Any = None
                         ) -> tuple[Masks, list[float], dict[str, torch.Tensor]]:
    """Train ``model`` on ``ctx``'s data with the callbacks (and ``reparam``) through the suite's session
    and loop (:func:`pruners.session.build_session`, :func:`pruners.session.fit`).

    Returns the final masks, the per-epoch train losses and the merged weights θ per prunable name.
    Raises KitFailure('training', ...) on a non-finite loss.
    """
    from pruners.schedules.helpers import effective_weights

    session = build_session(model, masks, lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9),
                            reparam=reparam, callbacks=callbacks, ctx=ctx, epochs=epochs,
                            steps_per_epoch=steps_per_epoch)
    try:
        history = fit(session, KitBatches(ctx, steps_per_epoch), ctx.loss_fn)
    except Diverged as exc:
        raise KitFailure("training", f"the loss became {exc.loss} at step {exc.step}") from None
    return session.masks, [h["train_loss"] for h in history], effective_weights(session.state)


# ------------------------------------------------------------------------------------------------
# what is checked, and how the kit runs
@dataclass(frozen=True)
class Target:
    """One thing the kit checks: a pruner, a schedule (run with the magnitude score) or a reparam (run
    with random masks), with its hyperparameters (JSON-able; kept as sorted items so a Target hashes)."""

    kind: str
    name: str
    items: tuple = ()

    @classmethod
    def of(cls, spec: "str | Target", args: Mapping[str, Any] | None = None) -> "Target":
        """``"force"`` (a pruner), ``"schedule:halfway"`` or ``"reparam:signin"``, with ``args``."""
        if isinstance(spec, Target):
            return spec
        kind, _, name = spec.rpartition(":") if ":" in spec else ("pruner", "", spec)
        if kind not in KINDS:
            raise ConfigError(f"conformance target {spec!r}: unknown kind {kind!r}; write NAME (a pruner), "
                              "schedule:NAME or reparam:NAME")
        return cls(kind, name, tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in (args or {}).items())))

    @property
    def args(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.items}

    @property
    def id(self) -> str:
        base = self.name if self.kind == "pruner" else f"{self.kind}:{self.name}"
        return base + "".join(f",{k}={v}" for k, v in self.items)


KINDS = ("pruner", "schedule", "reparam")


@dataclass(frozen=True)
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


class CheckFailed(AssertionError):
    """A check failed; the message is the one-line reason."""


class CheckSkipped(Exception):
    """A check does not apply (or an earlier one failed); the message says why."""


class ConformanceWarning(UserWarning):
    """A check passed with a caveat (missing metadata, a collapsed layer under ``global``)."""


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


def _check_masks(masks: Any, model: nn.Module, names: Any = None) -> Masks:
    """Masks over exactly the prunable parameters (``names``: their shapes, default the model's), bool
    dtype; KitFailure('masks') if not."""
    shapes = names or {n: tuple(p.shape) for n, p in prunable_parameters(model).items()}
    if not isinstance(masks, Mapping):
        raise KitFailure("masks", f"initial_masks returned {type(masks).__name__}, not pruners.Masks")
    for n, m in masks.items():
        if not isinstance(m, torch.Tensor):
            raise KitFailure("masks", f"mask {n!r} is a {type(m).__name__}, not a tensor")
        if m.dtype != torch.bool:
            raise KitFailure("masks", f"mask {n!r} has dtype {m.dtype}, not torch.bool")
    missing = [n for n in shapes if n not in masks]
    extra = [n for n in masks if n not in shapes]
    if missing or extra:
        raise KitFailure("masks", f"masks do not cover exactly the prunable parameters (missing {missing[:2]}, "
                                  f"unexpected {extra[:2]})")
    for n, shape in shapes.items():
        if tuple(masks[n].shape) != tuple(shape):
            raise KitFailure("masks", f"mask {n!r} has shape {tuple(masks[n].shape)}, expected {tuple(shape)}")
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
# one pruning (and, with callbacks or a reparam, training) on one model
@dataclass
class Outcome:
    masks: Masks
    seconds: float
    losses: list[float]
    trained: bool
    theta: dict[str, torch.Tensor] = field(default_factory=dict)


def _stage(check: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except KitFailure:
        raise
    except Exception as exc:
        raise KitFailure(check, _exc_line(exc)) from exc


def _parts(target: Target) -> tuple[type[Pruner], dict, str, Any]:
    """The pruner class, its args, its label and a ``bind(pruner) -> reparam`` for ``target``: a pruner
    as given; a schedule bound to the magnitude score; a reparam under random masks."""
    from pruners.schedules import bind_schedule
    from reparam.stack import build_reparam

    if target.kind == "pruner":
        return PRUNERS.get(target.name), target.args, f"pruner {target.name!r}", lambda pruner: None
    if target.kind == "schedule":
        def with_schedule(pruner: Pruner) -> None:
            bind_schedule(pruner, target.name, target.args)
        return PRUNERS.get("magnitude"), {}, "pruner 'magnitude'", with_schedule
    return PRUNERS.get("random"), {}, "pruner 'random'", lambda pruner: build_reparam(target.name, target.args)


def prune_once(target: Target, model_name: str, allocation_name: str, cfg: KitConfig, device: str = "cpu",
               notes: dict | None = None) -> Outcome:
    """Build a fresh pruner (with the target's schedule or reparam) and model, score, mask, and (with
    callbacks or a reparam) train; KitFailure on a fault.

    ``notes`` collects non-fatal observations: ``model-unchanged`` / ``no-grad-left`` reasons.
    """
    notes = notes if notes is not None else {}
    cls, args, label, bind = _parts(target)
    pruner = build_config(cls, dict(args), label)
    reparam = _stage("interface", lambda: bind(pruner))
    allocation = build_config(ALLOCATIONS.get(allocation_name), {}, f"allocation {allocation_name!r}")
    model = build_model(model_name, cfg.seed, device)
    ctx = make_context(model_name, cfg.seed, device, cfg.batch_size)
    shapes = {n: tuple(p.shape) for n, p in prunable_parameters(model).items()}
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
    before = _model_state(model)
    masks = _check_masks(_stage("masks", lambda: pruner.initial_masks(model, ctx, cfg.sparsity, allocation)), model)
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
    theta: dict[str, torch.Tensor] = {}
    trained = bool(callbacks) or bool(cls.learned_sparsity) or reparam is not None
    if trained:
        epochs = _stage("training", lambda: int(pruner.total_epochs(cfg.train_epochs, cfg.sparsity)))
        final, losses, theta = _stage("training", lambda: train_with_callbacks(
            model, masks, callbacks or [], ctx, epochs, cfg.steps_per_epoch, reparam=reparam))
        final = _check_masks(final, model, shapes)
        if cls.learned_sparsity:
            final = final.intersection(Masks({n: t != 0 for n, t in theta.items()}))
        for n, m in final.items():
            alive = theta[n][~m.to(theta[n].device)]
            if alive.numel() and bool((alive != 0).any()):
                raise KitFailure("training", f"{int((alive != 0).sum())} pruned weights of {n!r} are not zero "
                                             f"after training on {model_name}")
        masks = final
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    return Outcome(masks=masks, seconds=time.perf_counter() - t0, losses=losses, trained=trained,
                   theta={n: t.detach().cpu().clone() for n, t in theta.items()})


# ------------------------------------------------------------------------------------------------
# the evidence every check reads: gathered once per target and configuration
@dataclass
class Evidence:
    target: Target
    interface_error: str = ""
    interface_reason: str = ""
    missing_metadata: list[str] = field(default_factory=list)
    has_scores: bool = False
    uses_sparsity: bool = True
    learned: bool = False
    runs: dict[tuple[str, str], Outcome | KitFailure] = field(default_factory=dict)
    again: dict[tuple[str, str], Outcome | KitFailure] = field(default_factory=dict)
    gpu: dict[str, Outcome | KitFailure] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _interface(ev: Evidence) -> None:
    """Fill the interface fields of ``ev``; a ConfigError becomes ``interface_error``."""
    from pruners.plugins import check_pruner_class, pruner_metadata
    from pruners.schedules import SCHEDULES
    from reparam.base import REPARAMS
    from reparam.stack import KINDS as STACK_KINDS, build_reparam

    t = ev.target
    try:
        if t.kind == "pruner":
            cls = PRUNERS.get(t.name)
            check_pruner_class(t.name)
            build_config(cls, t.args, f"pruner {t.name!r}")
            meta = pruner_metadata(t.name)
            ev.missing_metadata = [a for a in ("description", "paper", "url", "version", "author") if not meta.get(a)]
            ev.has_scores = cls.scores is not Pruner.scores
            ev.uses_sparsity, ev.learned = bool(cls.uses_sparsity), bool(cls.learned_sparsity)
            ev.interface_reason = "dataclass, defaults, validate(), " + ("scores()" if ev.has_scores else "initial_masks()")
        else:   # a schedule or a reparam: a dataclass that builds from its args, with a description
            cls = (SCHEDULES if t.kind == "schedule" else REPARAMS).get(t.name)
            if "__dataclass_fields__" not in vars(cls):
                raise ConfigError(f"{t.kind} {t.name!r}: {cls.__qualname__} is not a dataclass; decorate it with "
                                  f"@dataclass under @register_{t.kind}")
            if t.kind == "schedule":
                build_config(cls, t.args, f"schedule {t.name!r}")
            else:
                build_reparam(t.name, t.args)
            ev.missing_metadata = [] if getattr(cls, "description", "") else ["description"]
            if t.kind == "reparam" and cls.kind not in STACK_KINDS:
                ev.missing_metadata.append(f"kind (one of {', '.join(STACK_KINDS)}: cannot be stacked)")
            ev.interface_reason = "dataclass, defaults, validate(); " + (
                "run with the magnitude score" if t.kind == "schedule" else "run under random masks")
    except ConfigError as exc:
        ev.interface_error = str(exc)


_EVIDENCE: dict[tuple, Evidence] = {}


def _registered(target: Target) -> object:
    """The class registered under the target's name now (None if unknown): part of the cache key, so a
    name registered again for another class is checked afresh."""
    from pruners.schedules import SCHEDULES
    from reparam.base import REPARAMS

    registry = {"pruner": PRUNERS, "schedule": SCHEDULES, "reparam": REPARAMS}[target.kind]
    return registry.get(target.name) if target.name in registry else None


def evidence(target: Target, cfg: KitConfig) -> Evidence:
    """Everything the checks look at for ``target`` under ``cfg``, computed once (every model ×
    allocation, a second run with the same seed, the GPU when present) and cached for the session."""
    key = (target, cfg, _registered(target))
    if key not in _EVIDENCE:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: threads only add contention (and noise to the time check)
        try:
            _EVIDENCE[key] = _gather(target, cfg)
        finally:
            torch.set_num_threads(threads)
    return _EVIDENCE[key]


def _gather(target: Target, cfg: KitConfig) -> Evidence:
    ev = Evidence(target)
    _interface(ev)
    if ev.interface_error:
        return ev

    def attempt(model_name: str, alloc: str, device: str, notes: dict) -> Outcome | KitFailure:
        try:
            return prune_once(target, model_name, alloc, cfg, device, notes)
        except KitFailure as kf:
            return kf
        except ConfigError as exc:
            return KitFailure("masks", str(exc))

    for model_name in cfg.models:
        for alloc in cfg.allocations:
            out = ev.runs[model_name, alloc] = attempt(model_name, alloc, "cpu", ev.notes)
            if isinstance(out, Outcome):
                ev.seconds[model_name] = ev.seconds.get(model_name, 0.0) + out.seconds
                if alloc == cfg.allocations[0]:
                    again = ev.again[model_name, alloc] = attempt(model_name, alloc, "cpu", {})
                    if isinstance(again, Outcome):
                        ev.seconds[model_name] += again.seconds
    if cfg.gpu and torch.cuda.is_available():
        for model_name in cfg.models[:2]:
            ev.gpu[model_name] = attempt(model_name, cfg.allocations[0], "cuda", {})
    return ev


# ------------------------------------------------------------------------------------------------
# the checks: each reads the evidence and returns its reason (pass), ``(WARN, reason)``, or raises
def _ok(ev: Evidence) -> list[tuple[tuple[str, str], Outcome]]:
    return [(k, o) for k, o in ev.runs.items() if isinstance(o, Outcome)]


def _failures(ev: Evidence, check: str) -> list[str]:
    return [f"{o} [{m}, {a}]" for (m, a), o in ev.runs.items() if isinstance(o, KitFailure) and o.check == check]


def _interface_check(ev: Evidence, cfg: KitConfig) -> str | tuple[str, str]:
    if ev.interface_error:
        raise CheckFailed(ev.interface_error)
    failed = _failures(ev, "interface")
    if failed:
        raise CheckFailed(failed[0])
    if ev.missing_metadata:
        return WARN, f"{ev.interface_reason}; metadata missing: {', '.join(ev.missing_metadata)}"
    return ev.interface_reason


def _needs_interface(ev: Evidence) -> None:
    if ev.interface_error:
        raise CheckSkipped("interface failed")


def _stage_check(name: str, reason: str) -> Callable[[Evidence, KitConfig], str]:
    def check(ev: Evidence, cfg: KitConfig) -> str:
        _needs_interface(ev)
        failed = _failures(ev, name)
        if failed:
            raise CheckFailed(failed[0])
        return reason
    return check


def _scores(ev: Evidence, cfg: KitConfig) -> str:
    _needs_interface(ev)
    if ev.target.kind != "pruner":
        raise CheckSkipped(f"the {ev.target.kind} is run with a built-in score")
    if not ev.has_scores:
        raise CheckSkipped("no scores(): masks come from initial_masks()")
    return _stage_check("scores", "a finite tensor per prunable parameter, of its shape")(ev, cfg)


def _density(ev: Evidence, cfg: KitConfig) -> str | tuple[str, str]:
    _needs_interface(ev)
    achieved = []
    for (m, a), out in _ok(ev):
        model = build_model(m, cfg.seed)
        if not ev.uses_sparsity:
            if out.masks.kept() != out.masks.total():
                raise CheckFailed(f"dense pruner pruned {out.masks.total() - out.masks.kept()} weights [{m}]")
        elif ev.learned:
            achieved.append(f"{m}/{a} {100 * out.masks.sparsity():.1f}%")
        else:
            allocation = build_config(ALLOCATIONS.get(a), {}, f"allocation {a!r}")
            problem = density_problem(out.masks, model, a, allocation, cfg.sparsity)
            if problem:
                raise CheckFailed(f"{problem} [{m}]")
    if not ev.uses_sparsity:
        return "dense: keeps every weight"
    if ev.learned:
        return ("learned sparsity, reported: " + ", ".join(achieved[:3])) if achieved else (WARN, "no run finished")
    return f"target {100 * cfg.sparsity:g}% met: exact overall (global), ±1 weight per layer (per-layer)"


def _deterministic(ev: Evidence, cfg: KitConfig) -> str:
    _needs_interface(ev)
    for (m, a), again in ev.again.items():
        out = ev.runs[m, a]
        if isinstance(again, KitFailure):
            raise CheckFailed(f"the second run with the same seed failed: {again} [{m}]")
        if not out.masks.equal(again.masks):
            diff = sum(int((out.masks[n] ^ again.masks[n]).sum()) for n in out.masks)
            raise CheckFailed(f"masks differ in {diff} entries between two runs with seed {cfg.seed} [{m}, {a}]")
        for n, t in out.theta.items():
            if not torch.equal(t, again.theta[n]):
                raise CheckFailed(f"trained weights of {n!r} differ between two runs with seed {cfg.seed} [{m}, {a}]")
    return f"same seed, same masks{' and trained weights' if any(o.trained for _, o in _ok(ev)) else ''}"


def _note_check(name: str, reason: str) -> Callable[[Evidence, KitConfig], str]:
    def check(ev: Evidence, cfg: KitConfig) -> str:
        _needs_interface(ev)
        if name in ev.notes:
            raise CheckFailed(ev.notes[name])
        return reason
    return check


def _collapse(ev: Evidence, cfg: KitConfig) -> str | tuple[str, str]:
    _needs_interface(ev)
    warn = []
    for (m, a), out in _ok(ev):
        collapsed = out.masks.collapsed_layers()
        if collapsed:
            if a == "global" or ev.learned:
                warn.append(f"{collapsed[0]} on {m}/{a}")
            else:
                raise CheckFailed(f"layer {collapsed[0]!r} has no weights left under {a} allocation [{m}]")
    if warn:
        return WARN, f"layer {warn[0]} collapsed (reported in the result's collapse column)"
    return "every layer keeps weights"


def _training(ev: Evidence, cfg: KitConfig) -> str:
    _needs_interface(ev)
    failed = _failures(ev, "training")
    if failed:
        raise CheckFailed(failed[0])
    if not any(o.trained for _, o in _ok(ev)):
        raise CheckSkipped("no training callbacks (pruning at init)")
    return "callbacks ran; final masks valid; pruned weights zero"


def _time(ev: Evidence, cfg: KitConfig) -> str:
    _needs_interface(ev)
    if not ev.seconds:
        raise CheckSkipped("no run finished")
    m, t = max(ev.seconds.items(), key=lambda kv: kv[1])
    if t > cfg.time_budget_s:
        raise CheckFailed(f"took {t:.1f}s on {m}, over the budget of {cfg.time_budget_s:g}s per model")
    return f"slowest model {t:.2f}s (budget {cfg.time_budget_s:g}s)"


def _cpu(ev: Evidence, cfg: KitConfig) -> str:
    _needs_interface(ev)
    failed = [f"{o.check} failed on CPU [{m}, {a}]" for (m, a), o in ev.runs.items() if isinstance(o, KitFailure)]
    if failed:
        raise CheckFailed(failed[0])
    return f"{len(cfg.models)} models × {len(cfg.allocations)} allocations"


def _gpu(ev: Evidence, cfg: KitConfig) -> str:
    _needs_interface(ev)
    if not ev.gpu:
        raise CheckSkipped("no CUDA GPU on this machine" if cfg.gpu else "GPU check switched off")
    alloc = cfg.allocations[0]
    for m, out in ev.gpu.items():
        if isinstance(out, KitFailure):
            raise CheckFailed(f"{out} [{m}, cuda]")
        if ev.uses_sparsity and not ev.learned:
            allocation = build_config(ALLOCATIONS.get(alloc), {}, f"allocation {alloc!r}")
            problem = density_problem(out.masks, build_model(m, cfg.seed), alloc, allocation, cfg.sparsity)
            if problem:
                raise CheckFailed(f"{problem} [{m}, cuda]")
    return f"ran on {torch.cuda.get_device_name(0)}"


#: The checks, in the order of the table; each ``(evidence, config) -> reason``.
CHECK_FUNCTIONS: dict[str, Callable[[Evidence, KitConfig], Any]] = {
    "interface": _interface_check,
    "scores": _scores,
    "masks": _stage_check("masks", "masks cover exactly the prunable parameters, bool, right shapes"),
    "density": _density,
    "deterministic": _deterministic,
    "model-unchanged": _note_check("model-unchanged", "parameters, buffers and modes unchanged by scoring"),
    "no-grad-left": _note_check("no-grad-left", "no .grad left by scoring"),
    "collapse": _collapse,
    "training": _training,
    "time": _time,
    "cpu": _cpu,
    "gpu": _gpu,
}
CHECKS = tuple(CHECK_FUNCTIONS)


def outcome(target: Target, check: str, cfg: KitConfig) -> tuple[str, str]:
    """``(status, reason)`` of one check: pass, warn, skip or fail."""
    try:
        result = CHECK_FUNCTIONS[check](evidence(target, cfg), cfg)
    except CheckFailed as exc:
        return FAIL, str(exc)
    except CheckSkipped as exc:
        return SKIP, str(exc)
    return result if isinstance(result, tuple) else (PASS, result)
