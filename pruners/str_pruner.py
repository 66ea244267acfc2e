"""STR: soft threshold reparameterisation (Kusupati, Ramanujan, Somani, Wortsman, Jain, Kakade,
Farhadi, ICML 2020), registered as ``str``.

Every prunable layer l gets one learnable threshold parameter s_l and computes its output with

    θ_eff = sign(θ) · ReLU(|θ| − g(s_l)),   g = sigmoid            (paper eq. 2 / 3)

so weights below the threshold are exactly zero in the forward pass and receive no loss gradient
(sub-gradient of ReLU); the thresholds are trained by the same optimiser.  Sparsity is *learned*:
it comes from weight decay on θ and on s (the paper uses one λ for both; s_l → 0 under decay raises
the threshold g(s_l) towards 0.5) — the target sparsity of the run is only a label, and the
achieved value is reported (``learned_sparsity = True``).

Mechanics: s_l is registered on the layer as the parameter ``str_s`` in :meth:`initial_masks` (before
the runner builds the optimiser, so it gets the recipe's learning rate, schedule and weight decay);
the training callback installs an instance-level forward computing θ_eff in ``on_start``; ``on_end``
folds θ_eff into the plain weight, removes the forward override and the s_l parameters, so after
training the model holds plain weights θ_eff with exact zeros (the runner's final masks are the
non-zero weights).  The masks stay all-ones during training, so the run's train_flops_rel counts
training as dense (an upper bound: the forward is sparse in θ_eff but computed densely here).

Hyperparameters: ``s_init`` (paper code's ImageNet value −3200: g(s) ≈ 0, training starts dense; a
less negative value such as −5 starts with a small threshold) and ``decay``, an additional L2
coefficient added to the gradients of θ and s before every step (the paper's λ = recipe
weight_decay + decay; use it when the task recipe has no weight decay, e.g. the Fashion-MNIST tasks).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pruners.allocation import Allocation
from pruners.base import Pruner, register_pruner
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks, prunable_parameters
from pruners.registry import ConfigError
from pruners.schedules import (install_weight_override, plain_reparam_reason, prunable_modules,
                               remove_weight_override)

PARAM = "str_s"


def soft_threshold(weight: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """θ_eff = sign(θ)·ReLU(|θ| − sigmoid(s)) (Kusupati et al. 2020, eq. 3)."""
    return torch.sign(weight) * torch.relu(weight.abs() - torch.sigmoid(s))


class _STRCallback(Callback):
    def __init__(self, pruner: "STR") -> None:
        self.pruner = pruner
        self.history: list[float] = []

    def on_start(self, state: TrainState) -> None:
        self.modules = prunable_modules(state.model)
        missing = [n for n, m in self.modules.items() if not isinstance(getattr(m, PARAM, None), nn.Parameter)]
        if missing:
            raise ConfigError(f"str thresholds are missing on {missing[:2]}; run str through its initial_masks")
        install_weight_override(self.modules, lambda n, m: soft_threshold(m.weight, getattr(m, PARAM)))

    def before_step(self, state: TrainState) -> None:
        lam = self.pruner.decay
        if lam:
            with torch.no_grad():
                for m in self.modules.values():
                    for p in (m.weight, getattr(m, PARAM)):
                        if p.grad is not None:
                            p.grad.add_(p, alpha=lam)

    def sparsity(self) -> float:
        with torch.no_grad():
            zeros = total = 0
            for m in self.modules.values():
                w = soft_threshold(m.weight, getattr(m, PARAM))
                zeros += int((w == 0).sum())
                total += w.numel()
        return zeros / max(1, total)

    def on_epoch_end(self, state: TrainState) -> None:
        s = self.sparsity()
        self.history.append(s)
        state.metrics["str_sparsity"] = s
        state.metrics["str_threshold_mean"] = float(sum(torch.sigmoid(getattr(m, PARAM)).item()
                                                        for m in self.modules.values()) / len(self.modules))

    def on_end(self, state: TrainState) -> None:
        self.final_s = {}
        with torch.no_grad():
            for n, m in self.modules.items():
                s = getattr(m, PARAM)
                m.weight.copy_(soft_threshold(m.weight, s))
                self.final_s[n] = float(s)
        remove_weight_override(self.modules)
        for m in self.modules.values():
            del m._parameters[PARAM]

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state["history"])


@register_pruner("str")
@dataclass
class STR(Pruner):
    """Soft threshold reparameterisation with one learnable threshold per layer.

    Attributes:
        s_init: initial value of every s_l (threshold g(s_init) = sigmoid(s_init)).
        decay: extra L2 coefficient on θ and s (added to their gradients before each step).
    """

    s_init: float = -3200.0
    decay: float = 0.0

    family = "continuous"
    learned_sparsity = True
    description = "STR: learned per-layer soft thresholds"
    paper = "Kusupati et al., ICML 2020"
    url = "https://arxiv.org/abs/2002.03231"

    def validate(self) -> None:
        if self.decay < 0:
            raise ConfigError(f"str decay {self.decay} must be >= 0; use e.g. 5e-4")

    def compatible_reparam(self, reparam: object) -> str | None:
        return plain_reparam_reason(reparam, "str")

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        for n, m in prunable_modules(model).items():
            p = prunable_parameters(model)[n]
            m.register_parameter(PARAM, nn.Parameter(torch.tensor(float(self.s_init), device=p.device,
                                                                  dtype=p.dtype)))
        return Masks.ones(model)

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._cb = _STRCallback(self)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"learned_sparsity_per_epoch": cb.history,
                "final_threshold": {n: float(torch.sigmoid(torch.tensor(s))) for n, s in
                                    getattr(cb, "final_s", {}).items()}}
