"""NanoAdam (Zhou, Jacobs, Gadhikar, Burkholz, *Pay Attention to Small Weights*, NeurIPS 2025,
arXiv 2506.21374; PAPERS.md §5): Adam that updates only the smallest-magnitude weights.

Every ``mask_interval`` steps the optimiser selects, per weight matrix (optionally per chunk of
``chunk_size`` consecutive entries of the flattened matrix), the ``density`` fraction of entries with
the smallest |θ| (gradient-free; entries pruned by the current masks are never selected, so k is a
fraction of the kept entries, rounded up per chunk).  Only the selected entries are updated by Adam.
The classifier head (the last prunable layer) and every non-prunable parameter (biases, normalisation
layers) are excluded from the selection and always fully updated.  The density may decay linearly from
``density`` to ``final_density`` over training, updated every ``density_interval`` steps (GLUE: 10 % → 4 %);
``density_interval = 0`` keeps it fixed (vision: 0.1–1 %, mask interval 100).  No error feedback;
weight decay 0 by default (decoupled, AdamW-style, on updated entries when > 0).

Adam moments when the selection changes (PAPERS.md marks this OPEN): the state is dense-shaped (as
AdamW's); moments change only at selected entries and are kept, frozen, while an entry is outside the
selection, so an entry that re-enters continues from its moments.  Bias correction uses the optimiser's
global step (the convention of ``torch.optim.SparseAdam`` for entries updated intermittently).  The
selection is stored as flat int64 indices (8 bytes per *selected* entry) and the masked update is done
on the gathered entries only (O(k) work per selected matrix).

NanoAdam replaces the recipe's optimiser: it keeps the recipe's learning rate (and its betas for
adam / adamw recipes; (0.9, 0.999) otherwise) and ignores its momentum and weight decay.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from pruners.hooks import Callback, TrainState
from pruners.masks import prunable_parameters
from pruners.registry import ConfigError
from reparam.base import Reparam, register_reparam


def bottom_k_indices(theta: torch.Tensor, density: float, keep: torch.Tensor | None = None,
                     chunk_size: int = 0) -> torch.Tensor:
    """Flat indices of the ``density`` fraction of smallest |θ| per chunk (ceil of density × kept)."""
    flat = theta.detach().abs().reshape(-1)
    n = flat.numel()
    scores = flat.clone()
    valid = torch.ones(n, dtype=torch.bool, device=flat.device)
    if keep is not None:
        valid = keep.reshape(-1).to(flat.device)
        scores = scores.masked_fill(~valid, float("inf"))
    c = n if chunk_size <= 0 else min(chunk_size, n)
    n_chunks = -(-n // c)
    pad = n_chunks * c - n
    if pad:
        scores = torch.cat([scores, scores.new_full((pad,), float("inf"))])
        valid = torch.cat([valid, valid.new_zeros(pad)])
    scores, valid = scores.view(n_chunks, c), valid.view(n_chunks, c)
    counts = valid.sum(dim=1)
    k = torch.ceil(counts.double() * density - 1e-9).clamp(min=0).long()
    k = torch.minimum(k, counts)
    order = torch.argsort(scores, dim=1, stable=True)
    take = torch.arange(c, device=flat.device).unsqueeze(0) < k.unsqueeze(1)
    offsets = (torch.arange(n_chunks, device=flat.device) * c).unsqueeze(1)
    idx = (order + offsets)[take]
    return torch.sort(idx).values


class NanoAdamOptimizer(torch.optim.Optimizer):
    """Adam on the bottom-k |θ| entries of ``selectable`` parameters, dense Adam on the others.

    Args:
        params: parameters or groups (each group may set its ``lr``).
        selectable: the parameters whose updates are restricted to the selection (weight matrices
            except the head); all other parameters are fully updated.
        keep_masks: optional callable returning, per selectable parameter, the bool mask of entries
            that may be selected (the pruning masks); ``None`` allows every entry.
        total_steps: the length of training for the linear density decay.
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, density: float = 0.01,
                 final_density: float = 0.0, mask_interval: int = 100, density_interval: int = 0,
                 chunk_size: int = 0, selectable: list[torch.Tensor] | None = None,
                 keep_masks: Callable[[], Mapping[torch.Tensor, torch.Tensor]] | None = None,
                 total_steps: int = 0) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.density0 = float(density)
        self.final_density = float(final_density)
        self.density = float(density)
        self.mask_interval = int(mask_interval)
        self.density_interval = int(density_interval)
        self.chunk_size = int(chunk_size)
        self.selectable = {id(p) for p in (selectable or [])}
        self.keep_masks = keep_masks
        self.total_steps = int(total_steps)
        self.global_step = 0
        self.selection: dict[int, torch.Tensor] = {}

    @property
    def base_optimizer(self) -> "NanoAdamOptimizer":
        """The optimiser the lr scheduler drives (NanoAdam replaces the step: itself)."""
        return self

    def current_density(self, step: int) -> float:
        """Linear decay from ``density`` to ``final_density`` over ``total_steps`` (fixed if disabled)."""
        if self.density_interval <= 0 or self.final_density <= 0 or self.total_steps <= 0:
            return self.density0
        t = (step // self.density_interval) * self.density_interval
        frac = min(1.0, t / self.total_steps)
        return self.density0 + (self.final_density - self.density0) * frac

    @torch.no_grad()
    def reselect(self) -> None:
        """Recompute the bottom-k selection of every selectable parameter."""
        keep = self.keep_masks() if self.keep_masks is not None else {}
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) in self.selectable:
                    self.selection[id(p)] = bottom_k_indices(p, self.density, keep.get(p), self.chunk_size)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        t0 = self.global_step
        new_density = self.current_density(t0)
        if (not self.selection and self.selectable) or t0 % max(1, self.mask_interval) == 0 \
                or new_density != self.density:
            self.density = new_density
            self.reselect()
        self.global_step += 1
        t = self.global_step
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
            step_size, bc2_sqrt = lr / bc1, math.sqrt(bc2)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                idx = self.selection.get(id(p))
                if idx is None:
                    if wd:
                        p.mul_(1.0 - lr * wd)
                    m.lerp_(p.grad, 1.0 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
                    p.addcdiv_(m, v.sqrt().div_(bc2_sqrt).add_(eps), value=-step_size)
                    continue
                if idx.numel() == 0:
                    continue
                if not (p.is_contiguous() and m.is_contiguous() and v.is_contiguous()):
                    raise RuntimeError("NanoAdam needs contiguous parameters and state; set the recipe's channels_last = false")
                pf, mf, vf = p.view(-1), m.view(-1), v.view(-1)
                g = p.grad.reshape(-1).index_select(0, idx)
                ms = mf.index_select(0, idx).lerp_(g, 1.0 - b1)
                vs = vf.index_select(0, idx).mul_(b2).addcmul_(g, g, value=1.0 - b2)
                ps = pf.index_select(0, idx)
                if wd:
                    ps.mul_(1.0 - lr * wd)
                ps.addcdiv_(ms, vs.sqrt().div_(bc2_sqrt).add_(eps), value=-step_size)
                mf.index_copy_(0, idx, ms)
                vf.index_copy_(0, idx, vs)
                pf.index_copy_(0, idx, ps)
        return loss


class NanoAdamHook(Callback):
    """Gives the optimiser the run length (density decay) and the live pruning masks."""

    def __init__(self, reparam: "NanoAdam") -> None:
        self.reparam = reparam

    def on_start(self, state: TrainState) -> None:
        opt = state.optimizer
        if isinstance(opt, NanoAdamOptimizer):
            opt.total_steps = state.total_steps
            # the weight matrices that are selected from: every prunable weight except the last (the head)
            params = prunable_parameters(state.model)
            by_name = {n: params[n] for n in list(params)[:-1]}
            self.reparam.selectable_params = by_name
            opt.selectable = {id(p) for p in by_name.values()}
            enforcer = state.masks

            def keep() -> dict[torch.Tensor, torch.Tensor]:
                masks = enforcer.masks if enforcer is not None else {}
                return {p: masks[n] for n, p in by_name.items() if n in masks}
            opt.keep_masks = keep
            opt.selection = {}

    def on_epoch_end(self, state: TrainState) -> None:
        opt = state.optimizer
        if isinstance(opt, NanoAdamOptimizer):
            state.metrics["nanoadam_density"] = opt.density


@register_reparam("nanoadam")
@dataclass
class NanoAdam(Reparam):
    """NanoAdam: Adam on the bottom-k |θ| of each weight matrix; head and norm layers fully updated."""

    kind = "geometry"

    description = "NanoAdam: Adam updating only the smallest-|θ| fraction of each weight matrix"
    paper = "Zhou, Jacobs, Gadhikar, Burkholz. Pay Attention to Small Weights. NeurIPS 2025 (arXiv 2506.21374)"

    density: float = 0.01
    final_density: float = 0.0
    mask_interval: int = 100
    density_interval: int = 0
    chunk_size: int = 0
    weight_decay: float = 0.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        self.selectable_params: dict[str, nn.Parameter] = {}

    def validate(self) -> None:
        if not (isinstance(self.density, (int, float)) and 0 < self.density <= 1):
            raise ConfigError(f"nanoadam density must be in (0, 1], got {self.density!r}; use e.g. density = 0.01")
        if not (self.final_density == 0 or 0 < self.final_density <= 1):
            raise ConfigError(f"nanoadam final_density must be in (0, 1] (or 0 for no decay), got "
                              f"{self.final_density!r}")
        for key in ("mask_interval",):
            if getattr(self, key) < 1:
                raise ConfigError(f"nanoadam {key} must be >= 1 step, got {getattr(self, key)!r}")
        for key in ("density_interval", "chunk_size"):
            if getattr(self, key) < 0:
                raise ConfigError(f"nanoadam {key} must be >= 0 (0 disables it), got {getattr(self, key)!r}")
        if self.weight_decay < 0 or not self.eps > 0:
            raise ConfigError("nanoadam weight_decay must be >= 0 and eps > 0")

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        groups = []
        for g in optimizer.param_groups:
            groups.append({"params": list(g["params"]), "lr": g["lr"],
                           "betas": tuple(g.get("betas", (0.9, 0.999)))})
        return NanoAdamOptimizer(groups, lr=optimizer.defaults.get("lr", 1e-3), eps=self.eps,
                                 weight_decay=self.weight_decay, density=self.density,
                                 final_density=self.final_density, mask_interval=self.mask_interval,
                                 density_interval=self.density_interval, chunk_size=self.chunk_size)

    def callbacks(self) -> list[Callback]:
        return [NanoAdamHook(self)]
