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
from torch.nn.utils import parametrize

from pruners.enforce import mark_grad_zero_where_masked
from pruners.hooks import Callback, TrainState
from pruners.masks import Masks, PRUNABLE_MODULES, prunable_parameters
from pruners.registry import ConfigError
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


def resplit(pairs: Mapping[str, tuple[nn.Parameter, nn.Parameter]], gamma: float | Mapping[str, float],
            optimizer: torch.optim.Optimizer | None = None, reset_state: bool = True,
            reset_step: bool = True) -> None:
    """Re-split θ = m ⊙ w in place with target γ without changing θ (Sign-In's reset); ``gamma`` is one
    value or one per weight name.

    Entries where both factors are exactly zero (pruned, or grown at zero) stay zero: they are the
    enforcer's business.  With ``reset_state`` every optimiser state tensor of m and w of the
    parameter's shape (momentum, Adam moments) is zeroed, and with ``reset_step`` also Adam's step
    counter, so the first update after the reset is bias-corrected as a fresh start.  Zeroing the
    moments alone (``reset_step = False``) leaves a counter of k steps while the moments hold one: the
    first update is ((1 − β₁)/(1 − β₁ᵏ)) / sqrt((1 − β₂)/(1 − β₂ᵏ)) × the learning rate per entry, up to
    (1 − β₁)/sqrt(1 − β₂) ≈ 3.2× for k ≫ 1000 under Adam's defaults (≈ 2.5× and 3.4× on the first two
    steps after a reset in the check of issue 19, against ≈ 0.44× just before).
    """
    with torch.no_grad():
        for name, (m, w) in pairs.items():
            theta = m * w
            keep = (m != 0) | (w != 0)
            new_m, new_w = balanced_split(theta, gamma[name] if isinstance(gamma, Mapping) else gamma)
            m.copy_(torch.where(keep, new_m, torch.zeros_like(new_m)))
            w.copy_(torch.where(keep, new_w, torch.zeros_like(new_w)))
            if reset_state and optimizer is not None:
                for p in (m, w):
                    for key, value in optimizer.state.get(p, {}).items():
                        if isinstance(value, torch.Tensor) and (value.shape == p.shape
                                                                or (reset_step and key == "step")):
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

    def __init__(self, reparam: "FactorizedReparam") -> None:
        self.reparam = reparam
        self._seen: object = None

    def on_start(self, state: TrainState) -> None:
        self._seen = state.masks.masks if state.masks is not None else None

    def _check(self, state: TrainState) -> None:
        if state.masks is None or state.masks.masks is self._seen:
            return
        self._seen = state.masks.masks
        with torch.no_grad():
            for n, (m, w) in self.reparam.pairs.items():
                keep = state.masks.masks.get(n)
                gamma = self.reparam.gamma_of(n)
                if keep is None or gamma <= 0:
                    continue
                dead = keep.to(m.device) & (m == 0) & (w == 0)
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

    kind = "parameterisation"

    split_gamma: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        self._pairs: dict[str, tuple[nn.Parameter, nn.Parameter]] = {}

    @property
    def pairs(self) -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
        return self._pairs

    def init_gamma(self) -> float:
        return self.split_gamma

    def gamma_of(self, name: str) -> float:
        """The split target γ of weight ``name`` (one value for every layer unless a subclass maps them)."""
        return self.init_gamma()

    def check_layers(self, names: Sequence[str]) -> None:
        """Refuse per-layer settings that name no prunable weight of the model (subclasses override)."""

    def apply(self, model: nn.Module, masks: Masks) -> None:
        """Factorise every prunable weight (masked entries become m = w = 0)."""
        params = prunable_parameters(model)
        self.check_layers(list(params))
        for name, p in params.items():
            module = _module_of(model, name)
            parametrize.register_parametrization(module, "weight", Factorized(self.gamma_of(name)), unsafe=True)
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

    def merge(self, model: nn.Module) -> None:
        """Fold m ⊙ w back into plain ``weight`` parameters (θ = M ⊙ m ⊙ w; M is already in m, w)."""
        for name in list(factor_pairs(model)):
            module = _module_of(model, name)
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        self._pairs = {}

    def callbacks(self) -> list[Callback]:
        return [RegrowSplit(self)]
