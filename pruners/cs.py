"""CS: continuous sparsification (Savarese, Silva, Maire, NeurIPS 2020).

Every prunable weight w gets a mask logit s (initialised to s_0 = ``mask_init``); the layer computes with

    θ_eff = w ⊙ σ(β s) / σ(s_0)

and the training objective adds λ Σ σ(β s)/σ(s_0) (paper eq. 5, the smooth L0 surrogate; the constant
1/σ(s_0) rescaling, which makes the initial gated network equal to the plain one, is the authors'
code's, lolemacs/continuous-sparsification ``models/layers.py``).  The temperature β grows
exponentially from 1 to ``final_temperature`` over training: β_e = β_T^{e/(E−1)} at epoch e of E (the
authors' code multiplies β by β_T^{1/(E−1)} at the start of every epoch after the first), so
σ(β s) approaches the hard gate 1[s > 0].  After training the hard mask is applied:
w ← w ⊙ 1[s > 0] / σ(s_0) — the sparsity is learned (``learned_sparsity = True``); the run's target
sparsity is only a label.  With s_0 slightly negative (code default −0.01) every gate starts just
below the hard threshold: a weight survives only if the loss pushes its logit above 0.

Mechanics: the logits are created in ``on_start`` and trained, as in the authors' code, by their own SGD
(momentum 0.9, no weight decay) whose learning rate follows the recipe's current learning rate; the
penalty gradient λ β σ'(β s)/σ(s_0) is added to their gradient (no change to the loss the loop
computes).  The layers' forward is replaced by an instance-level forward (removed in ``on_end``).
The paper's iterative ticket search (several rounds with weight rewinding) is not implemented: one
round is the pruning method.  Masks are all-ones during training, so train_flops_rel counts training
as dense.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import torch
from torch import nn

from pruners.allocation import Allocation
from pruners.base import Pruner, register_pruner
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks
from pruners.registry import ConfigError
from pruners.schedules import (install_weight_override, plain_reparam_reason, prunable_modules,
                               remove_weight_override)



def temperature(epoch: int, epochs: int, final_temperature: float) -> float:
    """β at ``epoch`` (0-based) of ``epochs``: β_T^{epoch/(epochs−1)}, 1 at the start, β_T at the end."""
    if epochs <= 1:
        return float(final_temperature)
    return float(final_temperature) ** (epoch / (epochs - 1))


class _CSCallback(Callback):
    def __init__(self, pruner: "CS") -> None:
        self.pruner = pruner
        self.beta = 1.0
        self.betas: list[float] = []
        self.history: list[float] = []
        self.scale = 1.0 / (1.0 / (1.0 + math.exp(-pruner.mask_init)))   # 1 / σ(s_0)

    def on_start(self, state: TrainState) -> None:
        self.modules = prunable_modules(state.model)
        self.logits = {n: torch.full_like(m.weight.detach(), float(self.pruner.mask_init)).requires_grad_(True)
                       for n, m in self.modules.items()}
        base = getattr(state.optimizer, "base_optimizer", state.optimizer)
        momentum = float(base.param_groups[0].get("momentum", 0.9) or 0.9)
        self.mask_opt = torch.optim.SGD(list(self.logits.values()), lr=state.current_lr(), momentum=momentum)
        install_weight_override(self.modules, lambda n, m: m.weight * self.gate(n))

    def gate(self, name: str) -> torch.Tensor:
        return torch.sigmoid(self.beta * self.logits[name]) * self.scale

    def on_epoch_start(self, state: TrainState) -> None:
        self.beta = temperature(state.epoch, state.epochs, self.pruner.final_temperature)
        self.betas.append(self.beta)

    def before_step(self, state: TrainState) -> None:
        self._lr = state.current_lr()   # the lr the main optimiser is about to use
        lam = self.pruner.penalty
        with torch.no_grad():
            for s in self.logits.values():
                if s.grad is None:
                    s.grad = torch.zeros_like(s)
                if lam:
                    sig = torch.sigmoid(self.beta * s)
                    s.grad.add_(sig * (1 - sig), alpha=lam * self.beta * self.scale)

    def after_step(self, state: TrainState) -> None:
        for g in self.mask_opt.param_groups:
            g["lr"] = self._lr
        self.mask_opt.step()
        self.mask_opt.zero_grad(set_to_none=True)

    def hard_sparsity(self) -> float:
        zeros = sum(int((s <= 0).sum()) for s in self.logits.values())
        total = sum(s.numel() for s in self.logits.values())
        return zeros / max(1, total)

    def on_epoch_end(self, state: TrainState) -> None:
        s = self.hard_sparsity()
        self.history.append(s)
        state.metrics["cs_hard_sparsity"] = s
        state.metrics["cs_temperature"] = self.beta

    def on_end(self, state: TrainState) -> None:
        with torch.no_grad():
            for n, m in self.modules.items():
                m.weight.mul_((self.logits[n] > 0).to(m.weight.dtype) * self.scale)
        remove_weight_override(self.modules)

    def state_dict(self) -> dict:
        return {"beta": self.beta, "betas": self.betas, "history": self.history,
                "logits": {n: s.detach().cpu() for n, s in getattr(self, "logits", {}).items()},
                "mask_opt": self.mask_opt.state_dict() if hasattr(self, "mask_opt") else None}

    def load_state_dict(self, state: dict) -> None:
        self.beta, self.betas, self.history = state["beta"], list(state["betas"]), list(state["history"])
        if getattr(self, "logits", None) and state.get("logits"):
            with torch.no_grad():
                for n, s in state["logits"].items():
                    self.logits[n].copy_(s)
            if state.get("mask_opt"):
                self.mask_opt.load_state_dict(state["mask_opt"])


@register_pruner("cs")
@dataclass
class CS(Pruner):
    """Continuous sparsification: sigmoid gates with an annealed temperature and an L1 gate penalty.

    Attributes:
        mask_init: initial mask logit s_0 of every weight (σ(s_0) is the initial gate).
        penalty: λ of the penalty λ Σ σ(βs)/σ(s_0) (summed over all prunable weights; code default 1e-8).
        final_temperature: β_T, the temperature of the last epoch (≥ 1; code default 200).
    """

    mask_init: float = -0.01
    penalty: float = 1e-8
    final_temperature: float = 200.0

    family = "continuous"
    learned_sparsity = True
    description = "continuous sparsification: annealed sigmoid gates with L1 penalty"
    paper = "Savarese, Silva, Maire, NeurIPS 2020"
    url = "https://arxiv.org/abs/1912.04427"

    def validate(self) -> None:
        if self.penalty < 0:
            raise ConfigError(f"cs penalty {self.penalty} must be >= 0; use e.g. 1e-8")
        if self.final_temperature < 1:
            raise ConfigError(f"cs final_temperature {self.final_temperature} must be >= 1; use e.g. 200")

    def compatible_reparam(self, reparam: object) -> str | None:
        return plain_reparam_reason(reparam, "cs")

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        return Masks.ones(model)

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._cb = _CSCallback(self)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"temperatures": cb.betas, "hard_sparsity_per_epoch": cb.history}
