"""Shared pieces of the schedules (dense-to-sparse, DST and learned-sparsity pruners).

- :func:`cubic_sparsity` — Zhu & Gupta (2017), eq. (1): the gradual pruning ramp
  ``s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³``.
- :func:`cosine_fraction` — RigL's drop-fraction decay (Evci et al. 2020, eq. 1):
  ``f(t) = α/2 · (1 + cos(π t / T_end))``.
- :func:`nested_masks` — (re-)pruning by any scores under any :class:`~pruners.allocation.Allocation`,
  optionally nested inside the current masks; :func:`magnitude_scores` — |θ| of the merged weights;
  :func:`plain_view` — the trained network as plain weights, for scores that run it.
- :func:`functional_forward` / :func:`override_weights` — run a Linear / Conv layer with another
  weight tensor (STR's soft-thresholded weight, CS's gated weight, RigL's dense θ-gradient), whatever
  reparam holds the layer's parameters.
- :func:`theta_gradients` — the dense gradient ∂L/∂θ of the loss w.r.t. the effective weights on one
  batch, and the per-sample multiply-accumulates of every prunable layer seen in that pass (for
  FLOP accounting without importing ``benchmark``).
- :func:`reset_all_optimizer_state` — fresh optimiser state (IMP / LRR rounds).
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from pruners.allocation import Allocation
from pruners.masks import Masks, prunable_parameters


# ------------------------------------------------------------------------------------------------
# schedules
def cubic_sparsity(t: int, s_i: float, s_f: float, t0: int, t_end: int, power: float = 3.0) -> float:
    """Zhu & Gupta (2017) eq. (1) with ``nΔt = t_end − t0``: the sparsity after ``t`` steps (``power``
    is the exponent, 3 in the paper).

    Before ``t0`` the sparsity is ``s_i``; from ``t_end`` on it is ``s_f``.  (The masks only change
    at ``t0 + kΔt``; callers evaluate this at those steps.)
    """
    if t <= t0:
        return float(s_i)
    if t >= t_end:
        return float(s_f)
    frac = (t - t0) / (t_end - t0)
    return float(s_f + (s_i - s_f) * (1.0 - frac) ** power)


def cosine_fraction(alpha: float, t: int, t_start: int, t_end: int) -> float:
    """RigL's cosine decay of the update fraction: ``α/2 (1 + cos(π (t − t_start)/(t_end − t_start)))``."""
    if t_end <= t_start:
        return 0.0
    x = min(1.0, max(0.0, (t - t_start) / (t_end - t_start)))
    return 0.5 * alpha * (1.0 + math.cos(math.pi * x))


# ------------------------------------------------------------------------------------------------
# magnitude pruning under an allocation
def nested_masks(scores: Mapping[str, torch.Tensor], density: float, allocation: Allocation,
                 within: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Keep the highest ``scores`` so that ``density`` of all weights survive under ``allocation``.

    With ``within`` (the current masks) the result is nested in it: pruned weights score below every
    other score (−1 for non-negative scores such as |θ|) and the result is intersected with ``within``,
    so a weight once pruned stays pruned (IMP, GMP).  Ties are broken by the allocation's stable order
    (lower flat index wins).
    """
    if within is not None:
        floor = min(-1.0, min((float(s.min()) for s in scores.values() if s.numel()), default=0.0) - 1.0)
        scores = {n: torch.where(within[n].to(s.device), s, torch.full_like(s, floor)) for n, s in scores.items()}
    masks = allocation.masks(scores, density)
    if within is not None:
        masks = Masks({n: m & within[n].to(m.device) for n, m in masks.items()})
    return masks


def magnitude_scores(state) -> dict[str, torch.Tensor]:
    """|θ| of the merged weights in float32: the magnitude score of a network being trained."""
    return {n: w.detach().abs().float() for n, w in effective_weights(state).items()}


def plain_view(state) -> nn.Module:
    """The network being trained as plain weights, for scores that run it (SNIP, GraSP, SynFlow).

    Without a reparam, or with one that keeps plain weight parameters, it is the model itself; under a
    ``torch.nn.utils.parametrize`` reparam (Sign-In, PILoT, spred) it is a deep copy with every
    parametrisation folded into a plain weight (θ = m ⊙ w), so scoring never touches the trained model.
    ``parametrize`` gives all copies of a parametrised module one shared class and removing a
    parametrisation deletes the property from that class, so each copied module first gets a class of
    its own (same bases and attributes); the trained model's modules are left as they are.
    """
    model = state.model
    if not any(parametrize.is_parametrized(m) for m in model.modules()):
        return model
    view = copy.deepcopy(model)
    for m in view.modules():
        if parametrize.is_parametrized(m):
            cls = type(m)
            m.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(m.parametrizations):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return view


def effective_weights(state) -> dict[str, torch.Tensor]:
    """θ per prunable name: the reparam's merged weights, or the plain weights without a reparam."""
    reparam = getattr(state, "reparam", None)
    if reparam is not None:
        return reparam.effective_weights(state.model)
    return {n: p.detach() for n, p in prunable_parameters(state.model).items()}


# ------------------------------------------------------------------------------------------------
# running a layer with another weight
def prunable_modules(model: nn.Module, names: Iterable[str] | None = None) -> dict[str, nn.Module]:
    """Prunable weight name → the module that owns it (``"fc.weight"`` → ``model.fc``).

    ``names`` defaults to the model's plain prunable parameters; pass the mask names when a reparam
    has replaced the weights by a parametrisation (then ``module.weight`` is no Parameter).
    """
    modules = dict(model.named_modules())
    names = list(prunable_parameters(model)) if names is None else list(names)
    return {n: modules[n.rpartition(".")[0]] for n in names}


def functional_forward(module: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``module(x)`` computed with ``weight`` instead of the module's own weight (Linear / Conv)."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, module.bias)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module._conv_forward(x, weight, module.bias)
    raise TypeError(f"cannot run {type(module).__name__} with a substituted weight; only Linear and Conv "
                    "layers are prunable")


def install_weight_override(modules: Mapping[str, nn.Module],
                            weight_fn: Callable[[str, nn.Module], torch.Tensor]) -> None:
    """From now on every module in ``modules`` computes its output with ``weight_fn(name, module)``.

    Implemented as an instance-level ``forward`` (nothing is computed twice; parameters, names and
    the optimiser are untouched).  Undo with :func:`remove_weight_override`.
    """
    for name, mod in modules.items():
        def fwd(x: torch.Tensor, _n: str = name, _m: nn.Module = mod) -> torch.Tensor:
            return functional_forward(_m, x, weight_fn(_n, _m))
        mod.forward = fwd  # type: ignore[method-assign]


def remove_weight_override(modules: Mapping[str, nn.Module]) -> None:
    for mod in modules.values():
        if "forward" in mod.__dict__:
            del mod.forward


@contextlib.contextmanager
def override_weights(modules: Mapping[str, nn.Module],
                     weight_fn: Callable[[str, nn.Module], torch.Tensor]) -> Iterator[None]:
    """:func:`install_weight_override` for the duration of a ``with`` block."""
    try:
        install_weight_override(modules, weight_fn)
        yield
    finally:
        remove_weight_override(modules)


def plain_reparam_reason(reparam: object, pruner_name: str) -> str | None:
    """None when ``reparam`` keeps plain weight parameters (it may still wrap the optimiser or add
    callbacks), else why a pruner that rewrites the forward pass (STR, CS) cannot compose with it.

    Duck-typed (pruners do not import ``reparam``): the reparam must not override ``apply``,
    ``mask_targets``, ``effective_weights`` or ``merge`` of the base ``Reparam``.
    """
    parts = getattr(reparam, "parts", [reparam])   # a stack (reparam.stack.Stack): each member
    changed = [m for part in parts for m in ("apply", "mask_targets", "effective_weights", "merge")
               if getattr(getattr(type(part), m, None), "__qualname__", "Reparam." + m) != "Reparam." + m]
    if not changed:
        return None
    return (f"{pruner_name} re-parameterises the forward pass of every prunable weight itself, and this reparam "
            f"changes the weight parameterisation too ({', '.join(changed)}); use reparam 'none' or an "
            "optimiser-only reparam")


def theta_gradients(model: nn.Module, theta: Mapping[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                    ) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Dense gradient ∂L/∂θ at the effective weights ``theta`` on ``batch``, and per-layer MACs.

    Every prunable layer runs with a fresh leaf copy of its θ, so the gradient is w.r.t. θ itself
    (pruned entries included: RigL's grow criterion) whatever reparam holds the parameters.  The
    model's own ``.grad`` fields are not touched.  The MACs per sample of each layer are counted as in
    ``benchmark.metrics.layer_macs`` (inputs per output × output elements of one sample).
    """
    modules = prunable_modules(model, theta.keys())
    leaves = {n: theta[n].detach().clone().requires_grad_(True) for n in modules}
    macs: dict[str, int] = {}

    def weight_fn(name: str, mod: nn.Module) -> torch.Tensor:
        return leaves[name]

    hooks = []
    for name, mod in modules.items():
        def hook(m: nn.Module, inp: tuple, out: torch.Tensor, _n: str = name) -> None:
            macs[_n] = macs.get(_n, 0) + int(leaves[_n][0].numel() * out[0].numel())
        hooks.append(mod.register_forward_hook(hook))
    x, y = batch
    try:
        with torch.enable_grad(), override_weights(modules, weight_fn):
            loss = loss_fn(model(x), y)
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    out = {n: (g if g is not None else torch.zeros_like(leaves[n])).detach() for n, g in zip(leaves, grads)}
    return out, macs


def reset_all_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Zero every state tensor of every parameter (momentum, Adam moments); step counters to 0."""
    opt = getattr(optimizer, "base_optimizer", optimizer)
    for st in opt.state.values():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                value.zero_()
