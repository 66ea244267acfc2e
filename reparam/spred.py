"""spred (Ziyin & Wang, *spred: Solving L1 Penalty with SGD*, ICML 2023), the γ = 0 baseline of PILoT
(PAPERS.md §1 and §3).

Every prunable weight is factorised θ = m ⊙ w with ``m₀ = |w₀| = sqrt|θ₀|`` and the sign on w, so
``m² − w² = 0`` (γ = 0) from the start and for ever (PILoT's analysis: this split cannot change its
implicit bias, and the penalty ``α (m² + w²)`` at the balanced point equals the L1 penalty ``2α|θ|``).
The L2 strength α on both factors, its schedules, the logged dose and the optional final one-shot
global magnitude pruning are exactly those of :mod:`reparam.pilot` (``alpha`` default 1e-4, constant).
Entries with θ₀ = 0 start at the saddle m = w = 0 and never move — a property of the method.
"""
from __future__ import annotations

from dataclasses import dataclass

from reparam.base import register_reparam
from reparam.pilot import _ScheduledL2


@register_reparam("spred")
@dataclass
class Spred(_ScheduledL2):
    """spred: θ = m ⊙ w with m₀ = |w₀| = sqrt|θ₀| (γ = 0) and L2 weight decay on both factors."""

    description = "spred: θ = m⊙w with m = |w| = sqrt|θ| (γ = 0) and L2 on both factors (Ziyin & Wang 2023)"
    paper = "Ziyin, Wang. spred: Solving L1 Penalty with SGD. ICML 2023"
    metric_prefix = "spred"
    split_gamma = 0.0
