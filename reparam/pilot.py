"""PILoT (Jacobs & Burkholz, *Mask in the Mirror: Implicit Sparsification*, ICLR 2025, arXiv 2408.09966):
continuous sparsification by x = m ⊙ w with a scheduled L2 penalty on both factors (PAPERS.md §3).

Every prunable weight is factorised x = m ⊙ w (:mod:`reparam.factorized`) with the balanced split of
γ = 1 on the model's initial weights.  The regulariser ``α_t Σ (m² + w²)`` is added *to the gradient*
before each optimiser step (``∇m += 2 α_t m``, ``∇w += 2 α_t w``; so it passes through momentum, like
SGD's coupled weight decay).  Under gradient flow with time ``t = Σ η_k`` this is
``dm = −∇f ⊙ w − 2α m``, ``dw = −∇f ⊙ m − 2α w`` and therefore

    m² − w² = γ₀ · exp(−4 ∫α),   ∫α := Σ_k η_k α_k   (η_k the learning rate of step k),

the convention of PAPERS.md §1 (with momentum μ the long-run dose is larger by about 1/(1 − μ); the
logged ``pilot_dose`` is Σ η_k α_k without that factor).  The recipe's weight decay acts on m and w as
well and adds ``wd / 2`` to α in this convention; it is not part of the logged dose.

Schedules of α (``schedule``; k = 1, 2, … counts epochs, α is constant within an epoch):

* ``constant``: α_k = α;  ``harmonic``: α_k = α / k;  ``quadratic``: α_k = α / k²;
  ``geometric``: α_k = α · decay^(k−1) (the early version's 0.95^k with ``decay = 0.95``);
* ``adaptive`` (our rule for the final version's Algorithm 1, whose constants are not public): the
  sparsity criterion is ``‖m ⊙ w‖₁ < K`` with ``K = l1_target · ‖m₀ ⊙ w₀‖₁`` (a fraction of the
  initial L1 norm).  α starts at ``alpha``; at the end of every epoch in which the criterion is still
  unmet (‖m ⊙ w‖₁ ≥ K), α ← min(α · growth, alpha_max); once it is met, α stays where it is.

The sparse network: with ``final_sparsity > 0`` a one-shot global magnitude pruning of |m ⊙ w| to that
sparsity is done at the end of the last epoch — before its evaluation, so the recorded final accuracy is
that of the pruned network (no fine-tuning) — through the enforcer's ``update`` (both factors of a
pruned entry become 0; masks only shrink).  ``final_sparsity = 0`` leaves the masks to the pruner
(e.g. IMP / LRR, which prune |m ⊙ w| through ``effective_weights``).  Pair it with the ``dense`` pruner
for the published "train dense, prune once" setting.

spred (:mod:`reparam.spred`) is the same training with the γ = 0 split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import torch
from torch import nn

from pruners.hooks import Callback, TrainState
from pruners.masks import Masks
from pruners.registry import ConfigError
from reparam.base import register_reparam
from reparam.factorized import FactorizedReparam, gamma_stats

SCHEDULES = ("constant", "harmonic", "quadratic", "geometric", "adaptive")


def alpha_at(schedule: str, alpha: float, k: int, decay: float = 0.95) -> float:
    """α of epoch ``k`` (1-based) for the fixed schedules (PAPERS.md §3)."""
    if k < 1:
        raise ValueError("k counts epochs from 1")
    if schedule in ("constant", "adaptive"):
        return alpha
    if schedule == "harmonic":
        return alpha / k
    if schedule == "quadratic":
        return alpha / (k * k)
    if schedule == "geometric":
        return alpha * decay ** (k - 1)
    raise ConfigError(f"unknown alpha schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def global_magnitude_masks(weights: dict[str, torch.Tensor], current: Masks, sparsity: float) -> Masks:
    """Keep the ``1 − sparsity`` fraction of all prunable entries with the largest |θ| (global, exact
    count; ties broken by ``torch.topk``), intersected with the current masks."""
    names = list(weights)
    flat = torch.cat([torch.where(current[n].reshape(-1).cpu(), weights[n].detach().abs().reshape(-1).double().cpu(),
                                  torch.tensor(-1.0, dtype=torch.float64)) for n in names])
    keep_n = int(round((1.0 - sparsity) * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if keep_n > 0:
        keep[torch.topk(flat, keep_n).indices] = True
    keep &= flat >= 0
    out, start = {}, 0
    for n in names:
        size = weights[n].numel()
        out[n] = keep[start:start + size].reshape(weights[n].shape).to(current[n].device) & current[n]
        start += size
    return Masks(out)


class L2Schedule(Callback):
    """Adds ``2 α_t`` times each factor to its gradient, accumulates the dose Σ η α, adapts α, and
    performs the final one-shot magnitude pruning (see the module docstring)."""

    def __init__(self, reparam: "_ScheduledL2") -> None:
        self.reparam = reparam
        self.alpha = float(reparam.alpha)     # the adaptive α (current value)
        self.dose = 0.0
        self.l1_start = 0.0
        self.params: list[nn.Parameter] = []

    def current_alpha(self, epoch: int) -> float:
        r = self.reparam
        if r.schedule == "adaptive":
            return self.alpha
        return alpha_at(r.schedule, r.alpha, epoch + 1, r.decay)

    def on_start(self, state: TrainState) -> None:
        self.params = [p for pair in self.reparam.pairs.values() for p in pair]
        self.l1_start = self.l1_norm()

    def l1_norm(self) -> float:
        with torch.no_grad():
            return float(sum((m * w).abs().sum() for m, w in self.reparam.pairs.values()))

    def before_step(self, state: TrainState) -> None:
        a = self.current_alpha(state.epoch)
        if a == 0.0:
            return
        pairs = [(p.grad, p) for p in self.params if p.grad is not None]
        if pairs:
            grads, params = zip(*pairs)
            torch._foreach_add_(list(grads), list(params), alpha=2.0 * a)
        self.dose += float(state.optimizer.param_groups[0]["lr"]) * a

    def on_epoch_end(self, state: TrainState) -> None:
        r = self.reparam
        masks = state.masks.masks if state.masks is not None else None
        state.metrics[f"{r.metric_prefix}_alpha"] = self.current_alpha(state.epoch)
        state.metrics[f"{r.metric_prefix}_dose"] = self.dose
        state.metrics[f"{r.metric_prefix}_gamma_mean"] = gamma_stats(r.pairs, masks)
        l1 = self.l1_norm()
        state.metrics[f"{r.metric_prefix}_l1"] = l1
        if r.schedule == "adaptive" and l1 >= r.l1_target * self.l1_start:
            self.alpha = min(self.alpha * r.growth, r.alpha_max)
        if r.final_sparsity > 0 and state.epoch == state.epochs - 1 and state.masks is not None:
            weights = {n: m.detach() * w.detach() for n, (m, w) in r.pairs.items()}
            current = state.masks.masks
            new = global_magnitude_masks({n: weights[n] for n in current if n in weights}, current,
                                         r.final_sparsity)
            full = Masks({n: (new[n] if n in new else current[n]) for n in current})
            state.masks.update(full, state.optimizer)
            state.metrics[f"{r.metric_prefix}_final_sparsity"] = full.sparsity()

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "dose": self.dose, "l1_start": self.l1_start}

    def load_state_dict(self, state: dict) -> None:
        self.alpha, self.dose, self.l1_start = state["alpha"], state["dose"], state["l1_start"]


@dataclass
class _ScheduledL2(FactorizedReparam):
    """Factorised weights with a scheduled L2 penalty α_t (m² + w²) and an optional final prune."""

    metric_prefix = "pilot"

    alpha: float = 1e-4
    schedule: str = "constant"
    decay: float = 0.95
    l1_target: float = 0.5
    growth: float = 2.0
    alpha_max: float = 1.0
    final_sparsity: float = 0.0

    def validate(self) -> None:
        name = self.registry_name or type(self).__name__
        for key in ("alpha", "alpha_max"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} {key} must be a finite number >= 0, got {v!r}; use e.g. {key} = 1e-4")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"{name} schedule {self.schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"{name} decay must be in (0, 1], got {self.decay!r}; use e.g. decay = 0.95")
        if not 0 < self.l1_target < 1:
            raise ConfigError(f"{name} l1_target must be in (0, 1), got {self.l1_target!r}; use e.g. 0.5")
        if not self.growth >= 1:
            raise ConfigError(f"{name} growth must be >= 1, got {self.growth!r}; use e.g. growth = 2")
        if not 0 <= self.final_sparsity < 1:
            raise ConfigError(f"{name} final_sparsity must be in [0, 1), got {self.final_sparsity!r}; "
                              "use e.g. 0.9 (or 0 to leave the masks to the pruner)")

    def callbacks(self) -> list[Callback]:
        return [*super().callbacks(), L2Schedule(self)]


@register_reparam("pilot")
@dataclass
class PILoT(_ScheduledL2):
    """PILoT: x = m ⊙ w, γ-split (default γ = 1) and a scheduled L2 strength α_t on both factors."""

    description = "PILoT: x = m⊙w, γ = 1 split, scheduled L2 on both factors, final global magnitude prune"
    paper = "Jacobs, Burkholz. Mask in the Mirror: Implicit Sparsification. ICLR 2025 (arXiv 2408.09966)"

    gamma: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not self.gamma > 0:
            raise ConfigError(f"pilot gamma must be > 0, got {self.gamma!r}; use gamma = 1 (or reparam spred "
                              "for the gamma = 0 split)")

    def init_gamma(self) -> float:
        return float(self.gamma)

    @property
    def split_gamma(self) -> float:  # type: ignore[override]
        return float(self.gamma)
