"""HAM — Hyperbolic Aware Minimization (Jacobs, Gadhikar, Rubio-Madrigal, Burkholz, ICLR 2026,
arXiv 2506.02630; PAPERS.md §4): a hyperbolic mirror step after any base optimiser step.

    θ_{k+½} = base_step(θ_k)
    θ_{k+1} = θ_{k+½} ⊙ exp(−η (α · sign(θ_{k+½}) ⊙ ∇f(θ_k) + β))

η is the current (scheduled) learning rate of the parameter's group, ∇f(θ_k) the raw gradient seen by
the base step (after the enforcer masked it; not the momentum), and the sign is taken after the base
step ("HYP*").  The limit flow is ``dθ = −(1 + α|θ|) ⊙ ∇f dt − β θ dt``.

Where the authors' public wrapper differs from the bare equations, each point is a flag:

* ``matrices_only`` (default True, as the wrapper): the mirror step touches only tensors with ≥ 2
  dimensions (Linear / Conv weights), not biases or normalisation parameters.
* ``clamp`` (default 5.0, as the wrapper): the exponent is clamped to [−clamp, clamp]; 0 disables.
* ``keep_zeros`` (default True): entries that are exactly zero after the base step stay zero.  The
  multiplicative step already does that for finite exponents; the flag also covers an unclamped
  overflow (0 · inf) and documents the intent (masks survive without the enforcer's help).
* ``max_norm`` (default 1000, as the wrapper): after the mirror step a tensor whose L2 norm exceeds
  ``max_norm`` is rescaled to that norm; 0 disables.  ``clip_all`` (default True, as the wrapper): the
  rescale covers every parameter with a gradient — biases and normalisation parameters too — not only
  the tensors the mirror step touches (False: matrices only, the behaviour of version 1).  The two
  differ only once a bias's norm passes ``max_norm``; in the committed fmnist-lenet300 HAM runs no
  parameter norm exceeds 24, and their re-runs under version 2 equal version 1 exactly (60 of 60).
* Not reproduced, on purpose: the wrapper's gradient-norm clip and its NaN / inf guards (skipping a
  step whose update is not finite).  The suite's divergence check ends such a run with its reason
  (``pruners.session.Diverged``) instead of training on silently; clip gradients in the recipe if a
  task needs it.

The mirror step is eager PyTorch, batched over a group's matrices with foreach ops (one dispatch per
operation instead of one per tensor).

Defaults α = 200, β = 1e-3 (ImageNet, PAPERS.md §4).  α multiplies η·g: retune it when the base lr
scale changes.  With α = β = 0 (and no clipping triggered) the wrapper is exactly the base optimiser.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from pruners.registry import ConfigError
from reparam.base import OptimizerWrapper, Reparam, register_reparam


#: Base optimisers whose step leaves ``.grad`` untouched (unless ``maximize``).
_GRAD_SAFE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)


class HamOptimizer(OptimizerWrapper):
    """The HAM mirror step after ``base.step()`` (see the module docstring for the formula and flags)."""

    def __init__(self, base: torch.optim.Optimizer, alpha: float = 200.0, beta: float = 1e-3,
                 matrices_only: bool = True, clamp: float = 5.0, keep_zeros: bool = True,
                 max_norm: float = 1000.0, clip_all: bool = True) -> None:
        super().__init__(base)
        self.clip_all = bool(clip_all)
        self.alpha, self.beta = float(alpha), float(beta)
        self.matrices_only, self.clamp = bool(matrices_only), float(clamp)
        self.keep_zeros, self.max_norm = bool(keep_zeros), float(max_norm)
        # per group: (its params list, its length, the params the mirror step may touch) — rebuilt when the
        # group's list changes; and the −ηβ scalars of the exponent, one 0-dim tensor per dtype / device,
        # refilled each step (creating a tensor per step cost ~20 µs, 1.5 % of a LeNet-300-100 step)
        self._candidates: dict[int, tuple[list, int, list[torch.Tensor]]] = {}
        self._shift: dict[tuple, torch.Tensor] = {}

    def _targets(self, group: dict[str, Any]) -> list[torch.Tensor]:
        params = group["params"]
        cached = self._candidates.get(id(group))
        if cached is None or cached[0] is not params or cached[1] != len(params):
            eligible = [p for p in params if p.dim() >= 2 or not self.matrices_only]
            cached = self._candidates[id(group)] = (params, len(params), eligible)
        return [p for p in cached[2] if p.grad is not None]

    def _needs_grad_copy(self) -> bool:
        """torch's own SGD / Adam / AdamW / RMSprop leave ``.grad`` untouched (unless ``maximize``);
        any other base optimiser might change it in place, so its gradients are copied first."""
        base = self.base_optimizer
        return type(base) not in _GRAD_SAFE or any(g.get("maximize", False) for g in base.param_groups)

    @property
    def preserves_zeros(self) -> bool:
        """Whether a step keeps an entry exactly 0 when its weight, gradient and optimiser state are 0
        (the :class:`pruners.MaskEnforcer` then skips its post-step weight multiply; issue 10).

        True when the base optimiser does (:func:`pruners.enforce.preserves_zeros`) and the mirror
        step cannot turn a zero into anything else: at θ_{k+½} = 0 the exponent is −ηβ (sign 0,
        gradient 0), ``exp`` of it is finite and positive, so θ_{k+1} = 0 · exp(…) = 0 with θ's sign
        of zero kept — guaranteed when ``clamp > 0`` bounds the exponent, and by ``keep_zeros``
        otherwise; the max-norm rescale multiplies by a finite factor.  A masked weight, whose
        gradient the enforcer zeroes, therefore stays exactly where the enforcer's multiply would
        put it (a NaN gradient gives NaN either way, since NaN · 0 is NaN)."""
        from pruners.enforce import preserves_zeros

        return preserves_zeros(self.base_optimizer) and (self.clamp > 0 or self.keep_zeros)

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        # no torch.no_grad() around the whole step: the base step sets its own grad mode and the mirror
        # pass enters no_grad itself
        copy = self._needs_grad_copy()
        saved = []
        for group in self.param_groups:
            params = self._targets(group)
            grads = [p.grad.detach().clone() if copy else p.grad for p in params]
            saved.append((group, params, grads))
        loss = self.base_optimizer.step(closure) if closure is not None else self.base_optimizer.step()
        if self.alpha == 0.0 and self.beta == 0.0:
            return loss
        for group, params, grads in saved:
            if params:
                self._mirror(params, grads, float(group["lr"]))
            clipped = [p for p in group["params"] if p.grad is not None] if self.clip_all else params
            if self.max_norm > 0 and clipped:
                self._clip(clipped)
        return loss

    @torch.no_grad()
    def _clip(self, params: list[torch.Tensor]) -> None:
        """Rescale each tensor whose L2 norm exceeds ``max_norm`` to that norm (one host sync per group)."""
        norms = torch.stack(torch._foreach_norm(params)).tolist()
        for p, n in zip(params, norms):
            if n > self.max_norm:
                p.mul_(self.max_norm / n)

    @torch.no_grad()
    def _mirror(self, params: list[torch.Tensor], grads: list[torch.Tensor], lr: float) -> None:
        """The mirror step: e = −η (α sign(θ_{k+½}) ∇f(θ_k) + β), then θ ← θ ⊙ exp(clamp(e)), batched over
        the group's matrices with foreach ops."""
        es = torch._foreach_sign(params)
        filled: set[tuple] = set()   # −ηβ as a 0-dim tensor per dtype / device, refilled once per group
        for e, g in zip(es, grads):
            key = (e.dtype, e.device)
            shift = self._shift.get(key)
            if shift is None:
                shift = self._shift[key] = torch.empty((), dtype=e.dtype, device=e.device)
            if key not in filled:
                shift.fill_(-lr * self.beta)
                filled.add(key)
            torch.addcmul(shift, e, g, value=-lr * self.alpha, out=e)
            if self.clamp > 0:
                e.clamp_(-self.clamp, self.clamp)
        torch._foreach_exp_(es)
        if self.keep_zeros and self.clamp <= 0:
            for p, e in zip(params, es):
                e.masked_fill_(p == 0, 1.0)
        torch._foreach_mul_(params, es)


@register_reparam("ham")
@dataclass
class HAM(Reparam):
    """HAM: the hyperbolic mirror step after the recipe's optimiser step (any base, any scheduler)."""

    kind = "geometry"

    description = "HAM: hyperbolic mirror step θ⊙exp(−η(α sign(θ)∇f + β)) after any base optimiser step"
    paper = ("Jacobs, Gadhikar, Rubio-Madrigal, Burkholz. Hyperbolic Aware Minimization: Implicit Bias for "
             "Sparsity. ICLR 2026 (arXiv 2506.02630)")

    #: 2: the max-norm clip covers biases too (``clip_all``, issue 19); committed HAM runs of version 1 had
    #: first-layer biases of norm up to 2,381 on fmnist-lenet300, which this clip rescales to 1,000.
    version = "2"

    alpha: float = 200.0
    beta: float = 1e-3
    matrices_only: bool = True
    clamp: float = 5.0
    keep_zeros: bool = True
    max_norm: float = 1000.0
    clip_all: bool = True

    def validate(self) -> None:
        for key in ("alpha", "beta", "clamp", "max_norm"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"ham {key} must be a finite number >= 0, got {v!r}; "
                                  f"use e.g. alpha = 200, beta = 1e-3 (clamp / max_norm 0 disables them)")

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        self._wrapper = HamOptimizer(optimizer, alpha=self.alpha, beta=self.beta, matrices_only=self.matrices_only,
                                     clamp=self.clamp, keep_zeros=self.keep_zeros, max_norm=self.max_norm,
                                     clip_all=self.clip_all)
        return self._wrapper  # type: ignore[return-value]
