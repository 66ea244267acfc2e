"""Keeping pruned weights at exactly zero through training (DESIGN.md, "Keeping pruned weights at zero").

:class:`MaskEnforcer` is a training callback.  Before each optimiser step it multiplies the masked
gradients by the mask (so momentum buffers and Adam moments of pruned entries stay zero); after the
step it multiplies the masked weights by the mask where the step could have revived them (decoupled
weight decay of an unknown optimiser, a plug-in's update; see below for when that pass is skipped).
The multiplies use pre-built float masks in each parameter's dtype and device — no per-forward
recomputation and no parametrisation on the hot path.

Gradient masking is skipped for parameters marked with :func:`mark_grad_zero_where_masked`: the
factors m, w of θ = m ⊙ w (Sign-In, PILoT, spred) are both zero at every pruned entry, so the backward's
``∇m = ∇θ ⊙ w`` and ``∇w = ∇θ ⊙ m`` are already (signed) zeros there and the multiply would change no
bit (NaN and ±0 included).  That saves one pass over each factor per step (issue 10).

Where the work happens (issue 10: masked / dense step ≤ 1.05).  Each multiply over a weight-sized
tensor costs a few per cent of a small model's step, mostly for reading the mask from memory, so the
enforcer does as few as it can:

- While attached to a training run (:meth:`attach`, called by ``on_start``), gradients are masked in a
  post-accumulate-grad hook of each parameter, i.e. inside the backward right after the gradient is
  written (while it is still in cache), instead of in a separate pass before the step.  Only
  gradients accumulated into ``.grad`` are affected; ``torch.autograd.grad`` (SNIP, GraSP, SynFlow,
  RigL's dense gradient) never sees the hook.  :meth:`detach` (``on_end``) removes the hooks.
- The post-step weight multiply is skipped when it cannot change a bit: the optimiser is one whose
  step leaves an entry at exactly zero when its weight, gradient and state are zero
  (:func:`preserves_zeros`: SGD with or without momentum, Nesterov and weight decay; Adam / AdamW
  with ε > 0, AMSGrad included; HAM over one of these, which declares it).  The factors m, w of
  θ = m ⊙ w are both zero at pruned entries, so their gradients are (signed) zeros there and the same
  argument holds (tests/reparam/test_fast_paths.py checks Sign-In re-splits, PILoT's final prune and
  mask changes with regrowth).  Everything else — NanoAdam, steepest descent, plug-in optimisers —
  keeps the multiply after every step.  Tests check that both paths give bit-identical weights and
  optimiser state.

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
    construction* (its partner factor is zero there), so :class:`MaskEnforcer` need not mask it.

    The declaration includes that nothing but the optimiser step writes a nonzero into a masked entry
    of these parameters (a reparam's re-split or regrowth keeps masked entries at zero), so the
    post-step multiply can be skipped for them as for plain weights (:func:`preserves_zeros`)."""
    for p in params:
        setattr(p, GRAD_ZERO_ATTR, True)


ZERO_PRESERVING_OPTIMIZERS: tuple[type, ...] = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def preserves_zeros(optimizer: torch.optim.Optimizer | None) -> bool:
    """Whether a step of ``optimizer`` keeps an entry exactly 0 when its weight, gradient and state are 0.

    True for torch's SGD (momentum buffer ``μ·0 + 0``, coupled decay ``0 + λ·0``, update ``−η·0``) and
    Adam / AdamW (moments stay 0, the update ``m̂ / (√v̂ + ε) = 0 / ε`` is 0 for ε > 0, decoupled decay
    ``(1 − ηλ)·0``); an optimiser may declare itself with an attribute ``preserves_zeros = True``.
    Anything else (subclasses included, since they may change the step) is assumed not to.
    """
    if optimizer is None:
        return False
    declared = getattr(optimizer, "preserves_zeros", None)
    if declared is not None:
        return bool(declared)
    if type(optimizer) not in ZERO_PRESERVING_OPTIMIZERS:
        return False
    return all(float(g.get("eps", 1.0)) > 0 for g in optimizer.param_groups)


class MaskEnforcer(Callback):
    """Apply ``masks`` to the tensors that carry each masked weight.

    Its ``before_step`` masks only gradients of parameters not marked with
    :func:`mark_grad_zero_where_masked` (the factors of θ = m ⊙ w are zero there already).

    Args:
        targets: for every mask name, the parameters that must be masked.  Without a reparam that is
            the weight itself; Sign-In/PILoT-style reparams (θ = m ⊙ w) pass both factors.
        masks: the current masks.
        weight_pass: multiply the weights by the masks after every step: ``True`` always, ``False``
            never (the caller vouches that the step keeps zeros), ``None`` (default) decided by
            :meth:`attach` — skipped for a :func:`preserves_zeros` optimiser.
    """

    def __init__(self, targets: Mapping[str, Sequence[nn.Parameter]], masks: Masks,
                 weight_pass: bool | None = None) -> None:
        self._targets = {n: list(ps) for n, ps in targets.items()}
        self._masks = masks
        self._weight_pass_option = weight_pass
        self.weight_pass = weight_pass is not False
        self._attached = False
        self._hooks: dict[nn.Parameter, object] = {}   # gradient hooks while attached
        self._build()

    @classmethod
    def for_model(cls, model: nn.Module, masks: Masks, weight_pass: bool | None = None) -> "MaskEnforcer":
        from pruners.masks import prunable_parameters

        params = prunable_parameters(model)
        return cls({n: [params[n]] for n in masks}, masks, weight_pass=weight_pass)

    def _build(self) -> None:
        self._params: list[nn.Parameter] = []
        self._fmasks: list[torch.Tensor] = []
        self._gmask_of: dict[nn.Parameter, torch.Tensor] = {}   # the targets whose gradients must be masked
        for name, params in self._targets.items():
            m = self._masks[name]
            if bool(m.all()):
                continue  # nothing pruned in this layer: no work on the hot path
            for p in params:
                fm = m.to(device=p.device, dtype=p.dtype)
                self._params.append(p)
                self._fmasks.append(fm)
                if not getattr(p, GRAD_ZERO_ATTR, False):
                    self._gmask_of[p] = fm
        if self._attached:
            self._sync_hooks()

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

    @property
    def attached(self) -> bool:
        """True between :meth:`attach` and :meth:`detach` (gradients are masked during the backward)."""
        return self._attached

    @property
    def hook_count(self) -> int:
        """Parameters carrying a gradient hook (those with a pruned entry and a gradient to mask)."""
        return len(self._hooks)

    def attach(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Mask gradients in hooks from now on, and decide the post-step weight pass for ``optimizer``.

        Idempotent.  A hook goes on each parameter whose gradient needs masking — not on dense layers,
        which pay nothing; a later :meth:`update` that prunes a layer adds its hook."""
        self._attached = True
        self._sync_hooks()
        if self._weight_pass_option is None:
            self.weight_pass = not preserves_zeros(optimizer)

    def _sync_hooks(self) -> None:
        for p in self._gmask_of:
            if p not in self._hooks and p.requires_grad:
                self._hooks[p] = p.register_post_accumulate_grad_hook(self._mask_grad_hook)

    def detach(self) -> None:
        """Remove the gradient hooks (gradients accumulate unmasked again)."""
        for h in self._hooks.values():
            h.remove()  # type: ignore[attr-defined]
        self._hooks = {}
        self._attached = False

    def _mask_grad_hook(self, p: torch.Tensor) -> None:
        m = self._gmask_of.get(p)
        if m is not None and p.grad is not None:
            p.grad.mul_(m)

    def step_done(self) -> None:
        """After the optimiser step: the weight pass, where it is needed (see :meth:`attach`)."""
        if self.weight_pass:
            self.apply_weights()

    def mask_gradients(self) -> None:
        """Multiply every masked gradient by its mask in one pass (what the hooks do while attached)."""
        pairs = [(p.grad, m) for p, m in self._gmask_of.items() if p.grad is not None]
        if pairs:
            grads, ms = zip(*pairs)
            torch._foreach_mul_(list(grads), list(ms))

    # Callback ---------------------------------------------------------------------------------
    def on_start(self, state: TrainState) -> None:
        self.apply_weights()
        self.attach(state.optimizer)

    def before_step(self, state: TrainState) -> None:
        if not self._attached:
            self.mask_gradients()

    def after_step(self, state: TrainState) -> None:
        self.step_done()

    def on_end(self, state: TrainState) -> None:
        self.detach()

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
