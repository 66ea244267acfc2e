"""Shared machinery of the factorised reparams θ = M ⊙ m ⊙ w (PAPERS.md §1; Sign-In, PILoT, spred).

Every prunable weight θ (Linear / Conv ``weight``) is replaced by two parameters ``m`` and ``w`` of
its shape through :func:`torch.nn.utils.parametrize.register_parametrization` with a
multi-tensor ``right_inverse``: the module's ``weight`` becomes the computed tensor ``m * w`` and the
parameters live at ``<module>.parametrizations.weight.original0`` (m) and ``…original1`` (w).  They
are ordinary parameters of the model, so the optimiser built from ``model.parameters()`` after
``apply`` trains m and w, and the recipe's weight decay applies to both (PAPERS.md §2: "weight decay
applies to m and w").

The mask M is not multiplied in the forward pass: the :class:`pruners.MaskEnforcer` keeps *both*
factors at exactly zero at every pruned entry (``mask_targets`` returns ``[m, w]``), so
``m ⊙ w = M ⊙ m ⊙ w`` holds after every step at the cost of one elementwise product per forward.

The split (PAPERS.md §1).  For a target γ > 0 the *balanced split* of θ is
``m = sqrt((γ + sqrt(γ² + 4θ²)) / 2)``, ``w = θ / m``: then ``m·w = θ``, ``m² − w² = γ``, ``m > 0`` (the
sign lives in w) and θ = 0 gives ``(sqrt γ, 0)``.  For γ = 0 (spred, Ziyin & Wang 2023) the split is
``m = sqrt|θ|``, ``w = sign(θ) sqrt|θ|``.

Gradient flow on (m, w) gives ``dθ = −(m² + w²) ⊙ ∇f dt = −sqrt(4θ² + γ²) ⊙ ∇f dt``.  With the L2
regulariser ``α_t (m² + w²)`` on both factors (gradient ``2 α_t m`` and ``2 α_t w``), ``γ`` follows
``γ_t = γ_0 · exp(−4 ∫α)`` where ``∫α = Σ_k η_k α_k`` (η_k the step's learning rate).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import torch
from torch import nn
from torch.nn.modules import module as _module_mod
from torch.nn.utils import parametrize

from pruners.enforce import mark_grad_zero_where_masked
from pruners.hooks import Callback, TrainState
from pruners.masks import Masks, PRUNABLE_MODULES, prunable_parameters
from pruners.registry import ConfigError
from reparam import factor_step, native
from reparam.base import Reparam


def balanced_split(theta: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split θ into (m, w) with m ⊙ w = θ and m² − w² = γ (PAPERS.md §1).

    γ > 0: ``m = sqrt((γ + sqrt(γ² + 4θ²)) / 2) > 0``, ``w = θ / m`` (PILoT's initialisation and
    Sign-In's reset).  γ = 0: ``m = sqrt|θ|``, ``w = sign(θ) · sqrt|θ|`` (spred).
    """
    if gamma < 0:
        raise ConfigError(f"split target gamma must be >= 0, got {gamma}; use gamma = 1 (PILoT) or 0 (spred)")
    if gamma == 0:
        mag = theta.abs().sqrt()
        return mag, torch.sign(theta) * mag
    m = torch.sqrt((gamma + torch.sqrt(gamma * gamma + 4.0 * theta * theta)) / 2.0)
    return m, theta / m


class Factorized(nn.Module):
    """Parametrisation θ = m ⊙ w; ``right_inverse`` performs the split with target ``gamma``."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, m: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return m * w

    def right_inverse(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, w = balanced_split(theta, self.gamma)
        return m.contiguous(), w.contiguous()


#: The private torch state the fast getter reads (parametrize's cache flag, the global module hooks).  A
#: torch release without one of them gets parametrize's own getter: slower, never wrong.
_FAST_GETTER_OK = hasattr(parametrize, "_cache_enabled") and all(
    hasattr(_module_mod, n) for n in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                      "_global_backward_hooks", "_global_backward_pre_hooks"))


def _install_fast_weight(module: nn.Module, tensor_name: str = "weight") -> None:
    """Replace the ``weight`` property that :mod:`torch.nn.utils.parametrize` injected into the
    module's (per-module) parametrised class by one that computes ``torch.mul(m, w)`` directly.

    Why (issue 10): parametrize's getter goes through ``ModuleDict``/``ModuleList`` lookups, two
    ``Module.__call__`` dispatches and a ``hasattr`` probe that raises ``AttributeError``; measured in
    the LeNet-300-100 training step that is ≈ 40 µs per layer per forward, about 5 % of the Sign-In
    step.  The product is the same ``aten::mul`` of the same tensors as ``Factorized.forward``, so θ
    and its autograd graph (``MulBackward0``) are bit-identical.

    Everything else stays parametrize's: registration, ``state_dict`` keys, ``right_inverse`` on
    assignment, ``remove_parametrizations`` (which restores the original class and with it drops
    this property).  The fast path is taken only in the plain case; the original getter runs when
    parametrize's cache is enabled (``parametrize.cached()``), when another parametrisation was
    stacked on the same tensor, when the first one is not a plain :class:`Factorized`, or when
    ``Module.__call__`` of the parametrisation modules would run hooks (their own or global ones) or
    trace.
    """
    if not _FAST_GETTER_OK:
        return
    cls = type(module)
    slow = cls.__dict__.get(tensor_name)
    if not isinstance(slow, property) or slow.fget is None:
        return   # not the layout parametrize creates: leave its property alone
    get_slow = slow.fget

    def get_fast(self: nn.Module) -> torch.Tensor:
        plist = self._modules["parametrizations"]._modules[tensor_name]
        mods = plist._modules
        if (parametrize._cache_enabled or len(mods) != 1 or _hooked(plist)
                or type(first := mods["0"]) is not Factorized or _hooked(first)):
            return get_slow(self)
        cache = factor_step.cache_of(plist)
        if cache is not None:   # the fused SGD path keeps θ as a leaf (reparam/factor_step.py)
            return cache.get()
        params = plist._parameters
        return torch.mul(params["original0"], params["original1"])

    setattr(cls, tensor_name, property(get_fast, slow.fset, slow.fdel, slow.__doc__))


def _hooked(module: nn.Module) -> bool:
    """Whether ``module(...)`` would leave ``Module.__call__``'s no-hook fast path (the same test as
    ``Module._call_impl``: any forward / backward (pre-)hook of its own or a global one, or tracing)."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks or _module_mod._global_forward_hooks
                or _module_mod._global_forward_pre_hooks or _module_mod._global_backward_hooks
                or _module_mod._global_backward_pre_hooks or torch._C._get_tracing_state())


def _module_of(model: nn.Module, name: str) -> nn.Module:
    mod_name = name.rpartition(".")[0]
    return model.get_submodule(mod_name) if mod_name else model


def factor_pairs(model: nn.Module) -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
    """Per prunable name (``"fc.0.weight"``), the (m, w) parameters of every factorised weight."""
    out: dict[str, tuple[nn.Parameter, nn.Parameter]] = {}
    for mod_name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_MODULES) or not getattr(module, "sparsebench_prunable", True):
            continue
        if parametrize.is_parametrized(module, "weight"):
            plist = module.parametrizations["weight"]
            if isinstance(plist[0], Factorized):
                out[f"{mod_name}.weight" if mod_name else "weight"] = (plist.original0, plist.original1)
    return out


def effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """θ for every prunable weight: ``m * w`` where factorised, the plain weight elsewhere."""
    pairs = factor_pairs(model)
    out = {n: p.detach() for n, p in prunable_parameters(model).items()}
    with torch.no_grad():
        for n, (m, w) in pairs.items():
            out[n] = m.detach() * w.detach()
    # keep module order
    order = [f"{mn}.weight" if mn else "weight" for mn, mod in model.named_modules()
             if isinstance(mod, PRUNABLE_MODULES) and getattr(mod, "sparsebench_prunable", True)]
    return {n: out[n] for n in order if n in out}


def resplit(pairs: Mapping[str, tuple[nn.Parameter, nn.Parameter]], gamma: float,
            optimizer: torch.optim.Optimizer | None = None, reset_state: bool = True) -> None:
    """Re-split θ = m ⊙ w in place with target γ without changing θ (Sign-In's reset).

    Entries where both factors are exactly zero (pruned, or grown at zero) stay zero: they are the
    enforcer's business.  With ``reset_state`` every optimiser state tensor of m and w of the
    parameter's shape (momentum, Adam moments) is zeroed.
    """
    with torch.no_grad():
        for m, w in pairs.values():
            theta = m * w
            keep = (m != 0) | (w != 0)
            new_m, new_w = balanced_split(theta, gamma)
            m.copy_(torch.where(keep, new_m, torch.zeros_like(new_m)))
            w.copy_(torch.where(keep, new_w, torch.zeros_like(new_w)))
            if reset_state and optimizer is not None:
                for p in (m, w):
                    for value in optimizer.state.get(p, {}).values():
                        if isinstance(value, torch.Tensor) and value.shape == p.shape:
                            value.zero_()


def gamma_stats(pairs: Mapping[str, tuple[nn.Parameter, nn.Parameter]],
                masks: Mapping[str, torch.Tensor] | None = None) -> float:
    """Mean of m² − w² over the kept entries (a cheap per-epoch diagnostic of the geometry)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for n, (m, w) in pairs.items():
            g = m * m - w * w
            if masks is not None and n in masks:
                keep = masks[n].to(g.device)
                total += float(g[keep].sum())
                count += int(keep.sum())
            else:
                total += float(g.sum())
                count += g.numel()
    return total / max(1, count)


class RegrowSplit(Callback):
    """When a schedule grows weights (RigL, SET, AC/DC's dense phases), both factors of a grown entry
    are zero — a saddle of m ⊙ w where the gradient of both factors vanishes.  This callback gives
    every entry that is kept by the current masks but has m = w = 0 the split of θ = 0 with target
    ``gamma`` (``m = sqrt γ, w = 0``), so the weight can move.  It only acts when the enforcer's masks
    object changed, so it costs nothing on steps without mask changes.
    """

    needs_factor_gradients = False   # it passes deferred gradients on before it changes m (see _check)

    def __init__(self, reparam: "FactorizedReparam") -> None:
        self.reparam = reparam
        self._seen: object = None

    def on_start(self, state: TrainState) -> None:
        self._seen = state.masks.masks if state.masks is not None else None

    def _check(self, state: TrainState) -> None:
        if state.masks is None or state.masks.masks is self._seen:
            return
        self._seen = state.masks.masks
        gamma = self.reparam.split_gamma
        if gamma <= 0:
            return
        with torch.no_grad():
            for n, (m, w) in self.reparam.pairs.items():
                keep = state.masks.masks.get(n)
                if keep is None:
                    continue
                dead = keep.to(m.device) & (m == 0) & (w == 0)
                if bool(dead.any()):
                    self.reparam.materialize_gradients()   # ∇w = ∇θ ⊙ m with the m of the forward
                    m.masked_fill_(dead, gamma ** 0.5)

    def before_step(self, state: TrainState) -> None:
        self._check(state)

    def on_epoch_start(self, state: TrainState) -> None:
        self._check(state)


@dataclass
class FactorizedReparam(Reparam):
    """Base of Sign-In, PILoT and spred: θ = M ⊙ m ⊙ w on every prunable weight.

    Subclasses define ``split_gamma`` (the γ of the initial split) and their callbacks.
    """

    split_gamma: ClassVar[float] = 1.0
    #: ``"auto"``: under torch's SGD the factors take the fused native step (reparam/factor_step.py) where
    #: it applies; ``"eager"``: always the plain parametrisation.  Not a config field: the compute path
    #: must not change a run's identity (as HAM's kernel).
    kernel: ClassVar[str] = "auto"

    def __post_init__(self) -> None:
        self._pairs: dict[str, tuple[nn.Parameter, nn.Parameter]] = {}
        self._model: nn.Module | None = None
        self._wrapper: factor_step.FactorSGD | None = None
        self._eager_reason: str | None = None

    @property
    def pairs(self) -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
        return self._pairs

    def init_gamma(self) -> float:
        return self.split_gamma

    def apply(self, model: nn.Module, masks: Masks) -> None:
        """Factorise every prunable weight (masked entries become m = w = 0)."""
        gamma = self.init_gamma()
        params = prunable_parameters(model)
        for name, p in params.items():
            module = _module_of(model, name)
            parametrize.register_parametrization(module, "weight", Factorized(gamma), unsafe=True)
            _install_fast_weight(module)
        self._model = model
        self._pairs = factor_pairs(model)
        # both factors are zero at every pruned entry, so their gradients are zero there already
        mark_grad_zero_where_masked(*(p for pair in self._pairs.values() for p in pair))
        with torch.no_grad():
            for name, (m, w) in self._pairs.items():
                if name in masks:
                    keep = masks[name].to(device=m.device, dtype=m.dtype)
                    m.mul_(keep)
                    w.mul_(keep)

    def mask_targets(self, model: nn.Module, masks: Masks) -> dict[str, Sequence[nn.Parameter]]:
        pairs = factor_pairs(model)
        if not pairs:  # not applied (or merged): plain weights
            return super().mask_targets(model, masks)
        return {n: list(pairs[n]) for n in masks}

    def effective_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return effective_weights(model)

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Under torch's SGD, the fused factor step (:class:`reparam.factor_step.FactorSGD`) where it
        applies; otherwise the optimiser unchanged (the eager parametrisation)."""
        if not self._pairs or self._model is None:
            return optimizer
        if self.kernel == "eager":
            self._eager_reason = "eager (kernel = eager)"
            return optimizer
        reason = factor_step.eligible_reason(optimizer, list(self._pairs.values()))
        if reason is not None:
            self._eager_reason = reason
            return optimizer
        plists = [(_module_of(self._model, n).parametrizations["weight"], pair) for n, pair in self._pairs.items()]
        self._wrapper = factor_step.FactorSGD(optimizer, factor_step.install(plists))
        return self._wrapper  # type: ignore[return-value]

    def materialize_gradients(self) -> None:
        """Fill ``m.grad`` / ``w.grad`` now if the fused step deferred them (call before changing m or w
        between the backward and the step)."""
        if self._wrapper is not None:
            self._wrapper.materialize()

    def kernel_path(self) -> str | None:
        """``"native (kernels-<hash>.so)"`` when the factors took the fused step, ``"eager (…why)"`` when
        they did not (another optimiser, ``SPARSEBENCH_NATIVE=0``, …), ``None`` before :meth:`apply`."""
        wrapper = self._wrapper
        if wrapper is None:
            return self._eager_reason
        if wrapper.paths_taken == {"native"}:
            return native.status()
        if "native" in wrapper.paths_taken:
            return "native and eager (some factor steps did not qualify for the fused pass)"
        return "eager (no factor step qualified for the fused pass)" if wrapper.paths_taken else None

    def merge(self, model: nn.Module) -> None:
        """Fold m ⊙ w back into plain ``weight`` parameters (θ = M ⊙ m ⊙ w; M is already in m, w)."""
        if self._wrapper is not None:
            factor_step.uninstall(self._wrapper.caches)
            self._wrapper.detach()
        for name in list(factor_pairs(model)):
            module = _module_of(model, name)
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        self._pairs = {}

    def callbacks(self) -> list[Callback]:
        return [RegrowSplit(self)]
