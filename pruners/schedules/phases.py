"""``phases``: alternating compressed / decompressed training (AC/DC; Peste, Iofinova, Vladu, Alistarh, NeurIPS 2021).

Phase plan of the paper's ImageNet ResNet-50 runs (100 epochs; read from the authors' configs,
IST-DASLab/ACDC ``configs/neurips/iht_imagenet_resnet50_insta_cosinelr_s90_ep100.yaml``): dense
warm-up for epochs 0–10; then 5-epoch phases alternating compressed (C) and decompressed (D),
starting and ending with C (C 10–15, D 15–20, …, C 70–75: 13 phases); a longer last decompressed
phase 75–85; a final compressed fine-tuning phase 85–100.  At the start of every compressed phase the
mask is recomputed with the pruner's score of the (dense) network being trained — |θ| of the merged
weights for ``acdc`` — under the run's allocation; the network then trains on that fixed support.  At
the start of every decompressed phase all weights are released; the pruned ones restart from zero
(their optimiser state is reset).

Parameters are in epochs of a ``reference_epochs`` run; with ``scale = true`` (default) every length is
multiplied by recipe.epochs / reference_epochs, so short CPU recipes keep the paper's proportions
(boundaries may fall inside an epoch; they are converted to optimiser steps with
round(epoch · steps_per_epoch)).  The plan must fit: the middle part
recipe − warmup − last_dense − final must be an odd number (≥ 1) of phases, else ConfigError.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pruners.allocation import Allocation
from pruners.hooks import Callback, TrainState
from pruners.masks import Masks
from pruners.registry import ConfigError
from pruners.schedules.base import Schedule, register_schedule

_TOL = 1e-6


class _PhasesCallback(Callback):
    def __init__(self, schedule: "Phases", pruner, density: float, allocation: Allocation) -> None:
        self.schedule, self.pruner, self.density, self.allocation = schedule, pruner, density, allocation
        self.log: list[tuple[int, str, float]] = []     # (step, phase kind, density after the switch)

    def on_start(self, state: TrainState) -> None:
        self.switches = self.schedule.switch_steps(state.epochs, state.steps_per_epoch)
        self._maybe_switch(state, 0)

    def _maybe_switch(self, state: TrainState, t: int) -> None:
        kind = self.switches.get(t)
        if kind is None:
            return
        if kind == "C":
            masks = self.pruner.training_select(state, self.density, self.allocation)
        else:
            masks = Masks({n: torch.ones_like(m) for n, m in state.masks.masks.items()})
        state.masks.update(masks, state.optimizer)
        self.log.append((t, kind, masks.density()))

    def after_step(self, state: TrainState) -> None:
        self._maybe_switch(state, state.step + 1)

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["density"] = state.masks.masks.density()

    def state_dict(self) -> dict:
        return {"log": self.log}

    def load_state_dict(self, state: dict) -> None:
        self.log = [tuple(x) for x in state["log"]]


@register_schedule("phases")
@dataclass
class Phases(Schedule):
    """Alternating compressed / decompressed phases, final compressed fine-tuning.

    Attributes:
        warmup_epochs: dense warm-up (paper: 10 of 100).
        phase_epochs: length of each alternating phase (paper: 5).
        last_dense_epochs: the last decompressed phase (paper: 10, epochs 75–85).
        final_epochs: final compressed fine-tuning (paper: 15, epochs 85–100).
        reference_epochs: the run length these numbers refer to (paper: 100).
        scale: multiply every length by recipe.epochs / reference_epochs.
    """

    warmup_epochs: float = 10.0
    phase_epochs: float = 5.0
    last_dense_epochs: float = 10.0
    final_epochs: float = 15.0
    reference_epochs: float = 100.0
    scale: bool = True

    description = "AC/DC's dense warm-up, alternating compressed / decompressed phases, compressed fine-tuning"

    def validate(self) -> None:
        if self.phase_epochs <= 0 or self.final_epochs <= 0 or self.reference_epochs <= 0:
            raise ConfigError(f"{self.label} phase_epochs, final_epochs and reference_epochs must be > 0; e.g. 5, 15, 100")
        if self.warmup_epochs < 0 or self.last_dense_epochs < 0:
            raise ConfigError(f"{self.label} warmup_epochs and last_dense_epochs must be >= 0; e.g. 10 and 10")

    def plan(self, epochs: float) -> list[tuple[float, float, str]]:
        """The phases as (start epoch, end epoch, 'D' or 'C') for a run of ``epochs``."""
        f = epochs / self.reference_epochs if self.scale else 1.0
        w, p, ld, fin = (self.warmup_epochs * f, self.phase_epochs * f, self.last_dense_epochs * f,
                         self.final_epochs * f)
        middle = epochs - w - ld - fin
        n = middle / p if middle > -_TOL else -1.0
        if n < 1 - _TOL or abs(n - round(n)) > 1e-6 or round(n) % 2 == 0:
            raise ConfigError(
                f"{self.label} phase plan does not fit {epochs:g} epochs: warm-up {w:g} + last dense {ld:g} + final {fin:g} "
                f"leaves {middle:g} epochs, which is not an odd number of {p:g}-epoch phases; adjust the phase "
                "lengths or the recipe epochs (or set scale = true)")
        n = int(round(n))
        phases: list[tuple[float, float, str]] = []
        if w > 0:
            phases.append((0.0, w, "D"))
        t = w
        for i in range(n):
            phases.append((t, t + p, "C" if i % 2 == 0 else "D"))
            t += p
        if ld > 0:
            phases.append((t, t + ld, "D"))
            t += ld
        phases.append((t, epochs, "C"))
        return phases

    def check_recipe(self, recipe: Any) -> None:
        self.plan(float(recipe.epochs))

    def switch_steps(self, epochs: int, steps_per_epoch: int) -> dict[int, str]:
        """Step → phase starting there ('C' recompute the mask, 'D' release it); consecutive equal
        phases merge (the first one wins)."""
        out: dict[int, str] = {}
        prev = "D"  # training starts dense (all-ones initial masks)
        for start, _end, kind in self.plan(float(epochs)):
            if kind == prev:
                continue
            out[int(round(start * steps_per_epoch))] = kind
            prev = kind
        return out

    def callbacks(self, pruner, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._cb = _PhasesCallback(self, pruner, 1.0 - float(sparsity), allocation)
        return [self._cb]

    def extra_results(self) -> dict:
        cb = getattr(self, "_cb", None)
        if cb is None:
            return {}
        return {"switches": [[t, k, d] for t, k, d in cb.log]}
