"""Keeping pruned weights at exactly zero through training (DESIGN.md, "Keeping pruned weights at zero").

:class:`MaskEnforcer` is a training callback.  Before each optimiser step it multiplies the masked
gradients by the mask (so momentum buffers and Adam moments of pruned entries stay zero); after the
step it multiplies the masked weights by the mask (so decoupled weight decay, HAM's mirror step or
any other post-step change cannot revive them).  Both are one ``torch._foreach_mul_`` over
pre-built float masks in each parameter's dtype and device — no per-forward recomputation and no
parametrisation on the hot path.

Gradient masking is skipped for parameters marked with :func:`mark_grad_zero_where_masked`: the
factors m, w of θ = m ⊙ w (Sign-In, PILoT, spred) are both zero at every pruned entry, so the backward's
``∇m = ∇θ ⊙ w`` and ``∇w = ∇θ ⊙ m`` are already (signed) zeros there and the multiply would change no
bit (NaN and ±0 included).  That saves one pass over each factor per step (issue 10); the weights are
still multiplied after every step.

When a schedule changes the masks (GMP, RigL, IMP, …), :meth:`MaskEnforcer.update` zeroes the
weights that became pruned, sets the weights that were grown to zero, and resets every per-parameter
optimiser state tensor (momentum, Adam moments) at the entries whose mask changed.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from pruners.hooks import Callback, TrainState
from pruners.masks import Masks


GRAD_ZERO_ATTR = "_sparsebench_grad_zero_where_masked"


def mark_grad_zero_where_masked(*params: torch.Tensor) -> None:
    """Declare that the gradient of each of ``params`` is zero wherever its mask is false *by
    construction* (its partner factor is zero there), so :class:`MaskEnforcer` need not mask it."""
    for p in params:
        setattr(p, GRAD_ZERO_ATTR, True)


class MaskEnforcer(Callback):
    """Apply ``masks`` to the tensors that carry each masked weight.

    Args:
        targets: for every mask name, the parameters that must be masked.  Without a reparam that is
            the weight itself; Sign-In/PILoT-style reparams (θ = m ⊙ w) pass both factors.
        masks: the current masks.
    """

    def __init__(self, targets: Mapping[str, Sequence[nn.Parameter]], masks: Masks) -> None:
        self._targets = {n: list(ps) for n, ps in targets.items()}
        self._masks = masks
        self._build()

    @classmethod
    def for_model(cls, model: nn.Module, masks: Masks) -> "MaskEnforcer":
        from pruners.masks import prunable_parameters

        params = prunable_parameters(model)
        return cls({n: [params[n]] for n in masks}, masks)

    def _build(self) -> None:
        self._params: list[nn.Parameter] = []
        self._fmasks: list[torch.Tensor] = []
        self._gparams: list[nn.Parameter] = []   # the targets whose gradients must be masked
        self._gmasks: list[torch.Tensor] = []
        for name, params in self._targets.items():
            m = self._masks[name]
            if bool(m.all()):
                continue  # nothing pruned in this layer: no work on the hot path
            for p in params:
                fm = m.to(device=p.device, dtype=p.dtype)
                self._params.append(p)
                self._fmasks.append(fm)
                if not getattr(p, GRAD_ZERO_ATTR, False):
                    self._gparams.append(p)
                    self._gmasks.append(fm)

    @property
    def masks(self) -> Masks:
        return self._masks

    @property
    def active(self) -> bool:
        return bool(self._params)

    def apply_weights(self) -> None:
        """Zero the masked entries of every target parameter."""
        if self._params:
            with torch.no_grad():
                torch._foreach_mul_(self._params, self._fmasks)

    def mask_gradients(self) -> None:
        if not self._gparams:
            return
        pairs = [(p.grad, m) for p, m in zip(self._gparams, self._gmasks) if p.grad is not None]
        if pairs:
            grads, ms = zip(*pairs)
            torch._foreach_mul_(list(grads), list(ms))

    # Callback ---------------------------------------------------------------------------------
    def on_start(self, state: TrainState) -> None:
        self.apply_weights()

    def before_step(self, state: TrainState) -> None:
        self.mask_gradients()

    def after_step(self, state: TrainState) -> None:
        self.apply_weights()

    # Mask changes -----------------------------------------------------------------------------
    def update(self, new: Masks, optimizer: torch.optim.Optimizer | None = None,
               grown_value: float = 0.0) -> dict[str, int]:
        """Switch to ``new`` masks; returns per layer the number of entries that changed.

        Newly pruned weights become 0.  Newly grown weights are set to ``grown_value`` (0 by default:
        RigL and SET grow weights at zero).  Optimiser state at every changed entry is reset to 0.
        """
        changed: dict[str, int] = {}
        with torch.no_grad():
            for name, params in self._targets.items():
                old_m, new_m = self._masks[name], new[name]
                diff = old_m ^ new_m
                n = int(diff.sum())
                changed[name] = n
                if n == 0:
                    continue
                grown = diff & new_m
                for p in params:
                    d = diff.to(p.device)
                    p.mul_(new_m.to(device=p.device, dtype=p.dtype))
                    if bool(grown.any()) and grown_value != 0.0:
                        p.masked_fill_(grown.to(p.device), grown_value)
                    if optimizer is not None:
                        reset_optimizer_state(optimizer, p, d)
        self._masks = new
        self._build()
        return changed

    def state_dict(self) -> dict:
        return {"masks": {n: m.cpu() for n, m in self._masks.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._masks = Masks(state["masks"])
        self._build()


def reset_optimizer_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, where: torch.Tensor) -> None:
    """Zero every state tensor of ``param`` with the parameter's shape at the entries ``where``."""
    state = optimizer.state.get(param)
    if not state:
        return
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value.masked_fill_(where.to(value.device), 0)
