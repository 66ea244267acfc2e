"""Steepest descent w.r.t. an L_p norm (Jacobs, Zhou, Burkholz, *Never Saddle for Reparameterized
Steepest Descent as Mirror Flow*, ICLR 2026, arXiv 2603.02064; PAPERS.md §6).

With 1/p + 1/q = 1 the step is ``w ← w − η sign(g) ⊙ |g|^{q−1}``: q = 2 is gradient descent, q = 1 sign
descent (a proxy for Adam), q in between interpolates.  Weight decay α (the recipe's ``weight_decay``,
read from the parameter group at every step so schedules can change it) is

* ``decoupled`` (default): ``w ← w − η (sign(g) |g|^{q−1} + α w)`` — the setting of the balance law
  ``|w_i|^q − |w_j|^q = (|w_{i,0}|^q − |w_{j,0}|^q) · exp(−q ∫α)`` for deep diagonal networks
  x = w₁ ⊙ … ⊙ w_L (∫α = Σ η_k α_k);
* ``coupled``: the decay enters the gradient before the nonlinearity, ``g ← g + α w``.

No momentum: this is the plain steepest-descent geometry of the paper (use the recipe's optimiser for
momentum methods).  It replaces the recipe's optimiser, keeping its learning rate and weight decay.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from pruners.registry import ConfigError
from reparam.base import Reparam, register_reparam

WD_MODES = ("decoupled", "coupled")


class SteepestDescent(torch.optim.Optimizer):
    """``w ← w − η sign(g) ⊙ |g|^{q−1}`` with decoupled or coupled weight decay (see module docstring)."""

    def __init__(self, params: Any, lr: float = 1e-3, q: float = 1.0, weight_decay: float = 0.0,
                 wd_mode: str = "decoupled") -> None:
        if not 1.0 <= q <= 2.0:
            raise ConfigError(f"steepest q must be in [1, 2] (1 = sign descent, 2 = gradient descent), got {q}")
        if wd_mode not in WD_MODES:
            raise ConfigError(f"steepest wd_mode {wd_mode!r} is unknown; choose one of {', '.join(WD_MODES)}")
        super().__init__(params, dict(lr=lr, q=q, weight_decay=weight_decay, wd_mode=wd_mode))

    @property
    def base_optimizer(self) -> "SteepestDescent":
        return self

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, q, wd, mode = group["lr"], group["q"], group["weight_decay"], group["wd_mode"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd and mode == "coupled":
                    g = g.add(p, alpha=wd)
                if q == 2.0:
                    d = g
                elif q == 1.0:
                    d = torch.sign(g)
                else:
                    d = torch.sign(g) * g.abs().pow(q - 1.0)
                if wd and mode == "decoupled":
                    p.mul_(1.0 - lr * wd)
                p.add_(d, alpha=-lr)
        return loss


@register_reparam("steepest")
@dataclass
class Steepest(Reparam):
    """Steepest descent w.r.t. L_p: q = 2 gradient descent, q = 1 sign descent."""

    kind = "geometry"

    description = "steepest descent w.r.t. L_p: w ← w − η sign(g)|g|^(q−1) (q = 1 sign descent, q = 2 GD)"
    paper = ("Jacobs, Zhou, Burkholz. Never Saddle for Reparameterized Steepest Descent as Mirror Flow. "
             "ICLR 2026 (arXiv 2603.02064)")

    q: float = 1.0
    wd_mode: str = "decoupled"

    def validate(self) -> None:
        if not (isinstance(self.q, (int, float)) and 1.0 <= self.q <= 2.0):
            raise ConfigError(f"steepest q must be in [1, 2] (1 = sign descent, 2 = gradient descent), got {self.q!r}")
        if self.wd_mode not in WD_MODES:
            raise ConfigError(f"steepest wd_mode {self.wd_mode!r} is unknown; choose one of {', '.join(WD_MODES)}")

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        groups = [{"params": list(g["params"]), "lr": g["lr"], "weight_decay": g.get("weight_decay", 0.0)}
                  for g in optimizer.param_groups]
        return SteepestDescent(groups, lr=optimizer.defaults.get("lr", 1e-3), q=float(self.q),
                               wd_mode=self.wd_mode)
