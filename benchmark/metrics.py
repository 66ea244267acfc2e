"""Run-level measurements: sign flips, FLOPs (RigL-paper counting), forward-backward timing.

FLOPs (Evci et al. 2020, "Rigging the Lottery", appendix on FLOP counting): the inference cost of a
network is the multiply-adds of its Linear and Conv layers, each scaled by the layer's density; a
training step costs three forward passes (forward, and backward for activations and weights), so a
static sparse training run costs ``f_S / f_D`` of dense training.  Masks that change during training
are integrated epoch by epoch; methods with extra dense work (RigL's dense gradient at update steps)
add it through ``TrainState.extra_train_flops``.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from pruners import Callback, Masks, TrainState
from pruners.masks import PRUNABLE_MODULES


def layer_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates per sample of every prunable layer, by its weight's parameter name."""
    macs: dict[str, int] = {}
    handles = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        w = module.weight
        per_out = w[0].numel()  # inputs contributing to one output element (in/groups × kernel)
        out_elems = output[0].numel()
        key = f"{names[module]}.weight" if names[module] else "weight"
        macs[key] = macs.get(key, 0) + int(per_out * out_elems)

    for m in model.modules():
        if isinstance(m, PRUNABLE_MODULES):
            handles.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return macs


def inference_flops(macs: Mapping[str, int], masks: Masks | None = None) -> float:
    """2 × MACs per sample, each prunable layer scaled by its density under ``masks``."""
    dens = masks.layer_density() if masks is not None else {}
    return float(sum(2 * m * dens.get(n, 1.0) for n, m in macs.items()))


class FlopsTracker(Callback):
    """Integrates the sparse training cost step by step (masks may change during training).

    Every step is charged the inference FLOPs of the masks its forward and backward ran with: the
    masks in effect at the start of the epoch, then — whenever a schedule replaces the masks
    (``MaskEnforcer.update`` installs a new masks object; checked by identity after every step, O(1))
    — the new ones from the next step on.  Changes at the end of an epoch count from the next epoch.
    """

    def __init__(self, macs: Mapping[str, int]) -> None:
        self.macs = dict(macs)
        self.dense = inference_flops(self.macs)
        self._sparse_steps = 0.0
        self._steps = 0
        self._last_step = 0
        self._cur: Masks | None = None      # the masks the steps since _last_step ran with
        self._cur_flops = self.dense

    def _switch(self, masks: Masks | None) -> None:
        self._cur = masks
        self._cur_flops = inference_flops(self.macs, masks)

    def _accumulate(self, upto: int) -> None:
        steps = upto - self._last_step
        self._sparse_steps += steps * self._cur_flops
        self._steps += steps
        self._last_step = upto

    def on_epoch_start(self, state: TrainState) -> None:
        self._last_step = state.step
        self._switch(state.masks.masks)

    def after_step(self, state: TrainState) -> None:
        masks = state.masks.masks
        if masks is not self._cur:  # replaced during this step: this step still ran with the old masks
            self._accumulate(state.step + 1)
            self._switch(masks)

    def on_epoch_end(self, state: TrainState) -> None:
        self._accumulate(state.step)

    def train_flops_rel(self, extra: float = 0.0) -> float:
        """Training FLOPs relative to dense training of the same length (3 forward-equivalents a step)."""
        if not self._steps or not self.dense:
            return 1.0
        return (3 * self._sparse_steps + extra) / (3 * self.dense * self._steps)

    def state_dict(self) -> dict:
        return {"sparse_steps": self._sparse_steps, "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self._sparse_steps, self._steps = state["sparse_steps"], state["steps"]


class SignFlipTracker(Callback):
    """Counts, per layer, kept weights whose sign differs from initialisation (Sign-In, HAM plots).

    ``weights`` returns the current θ per prunable name (a reparam's effective weights).  A weight
    counts as flipped when sign(θ_t) · sign(θ_0) < 0; pruned weights never count.
    """

    def __init__(self, weights: Callable[[], Mapping[str, torch.Tensor]]) -> None:
        self.weights = weights
        self.init_signs: dict[str, torch.Tensor] = {}
        self.last: dict[str, int] = {}

    def on_start(self, state: TrainState) -> None:
        self.init_signs = {n: torch.sign(w).to(torch.int8) for n, w in self.weights().items()}

    def counts(self, masks: Masks | None = None) -> dict[str, int]:
        out = {}
        for n, w in self.weights().items():
            s0 = self.init_signs.get(n)
            if s0 is None:
                continue
            flipped = (torch.sign(w).to(torch.int8) * s0) < 0
            if masks is not None and n in masks:
                flipped &= masks[n].to(flipped.device)
            out[n] = int(flipped.sum())
        return out

    def on_epoch_end(self, state: TrainState) -> None:
        self.last = self.counts(state.masks.masks if state.masks is not None else None)
        state.metrics["sign_flips"] = sum(self.last.values())

    def state_dict(self) -> dict:
        return {"init_signs": self.init_signs}

    def load_state_dict(self, state: dict) -> None:
        self.init_signs = state["init_signs"]


class AnytimeAccuracy(Callback):
    """Test top-1 at fixed optimiser-step counts (the recipe's ``eval_at_steps``), so that an
    early-training gain is reported as what it is (issue 20, "anytime accuracy").

    ``evaluate_fn()`` returns :func:`pruners.session.evaluate`'s metrics of the current model; it is
    called right after the step whose count is listed (evaluation mode, no gradient, no RNG drawn, so
    the training it interrupts is unchanged).  Steps past the end of training are not recorded.
    """

    def __init__(self, steps: Sequence[int], evaluate_fn: Callable[[], Mapping[str, float]]) -> None:
        self.steps = frozenset(int(s) for s in steps)
        self.evaluate_fn = evaluate_fn
        self.top1: dict[int, float] = {}

    def after_step(self, state: TrainState) -> None:
        done = state.step + 1  # optimiser steps finished (the loop counts the step after the callbacks)
        if done in self.steps:
            self.top1[done] = float(self.evaluate_fn().get("test_top1", float("nan")))

    def state_dict(self) -> dict:
        return {"top1": dict(self.top1)}

    def load_state_dict(self, state: dict) -> None:
        self.top1 = {int(k): float(v) for k, v in state["top1"].items()}


def forward_backward_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                             loss_fn: Callable, repeats: int = 3) -> float:
    """Median wall time of one forward-backward pass (the unit of mask-computation cost)."""
    times = []
    params = [p for p in model.parameters() if p.requires_grad]
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        grads = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
        del grads
        if x.is_cuda:
            torch.cuda.synchronize()
        if i:  # first pass is a warm-up
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]
