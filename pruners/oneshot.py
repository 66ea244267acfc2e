"""One-shot magnitude pruning after training, then fine-tuning (Han et al. 2015, one prune step).

Schedule (epochs): train dense for the recipe's epochs, prune once by magnitude of the merged θ under
the run's allocation (``global`` by default: one threshold over all layers), fine-tune the sparse
network for ``finetune_epochs``.  The run therefore trains ``recipe.epochs + finetune_epochs``
epochs, under one learning-rate schedule stretched over the whole run (the fine-tuning phase runs
on the decayed tail of the schedule, the low learning rate Han et al. fine-tune with).  With
``finetune_epochs = 0`` the network is pruned after the last step and not fine-tuned.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from pruners.allocation import Allocation
from pruners.base import Pruner, density_of, register_pruner
from pruners.hooks import Callback, PruneContext, TrainState
from pruners.masks import Masks
from pruners.registry import ConfigError
from pruners.schedules import effective_weights, magnitude_masks


class _OneShotCallback(Callback):
    def __init__(self, pruner: "OneShot", density: float, allocation: Allocation) -> None:
        self.pruner, self.density, self.allocation = pruner, density, allocation
        self.done = False

    def _prune(self, state: TrainState) -> None:
        masks = magnitude_masks(effective_weights(state), self.density, self.allocation)
        state.masks.update(masks, state.optimizer)
        self.done = True
        self.pruner._record = {"prune_epoch": state.epoch, "prune_step": state.step,
                               "density_after_prune": masks.density()}

    def on_epoch_start(self, state: TrainState) -> None:
        if not self.done and state.epoch == state.epochs - self.pruner.finetune_epochs:
            self._prune(state)

    def on_end(self, state: TrainState) -> None:
        if not self.done:  # finetune_epochs = 0: prune after the last step
            self._prune(state)

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = bool(state["done"])


@register_pruner("oneshot")
@dataclass
class OneShot(Pruner):
    """Train dense, prune once by magnitude, fine-tune ``finetune_epochs`` (total = recipe + fine-tune).

    Attributes:
        finetune_epochs: epochs of sparse fine-tuning after the prune step (≥ 0).
    """

    finetune_epochs: int = 2

    family = "dense-to-sparse"
    description = "one-shot magnitude pruning after dense training, then fine-tuning"
    paper = "Han, Pool, Tran, Dally, NeurIPS 2015 (one prune step)"
    url = "https://arxiv.org/abs/1506.02626"

    def validate(self) -> None:
        if self.finetune_epochs < 0:
            raise ConfigError(f"oneshot finetune_epochs must be >= 0, got {self.finetune_epochs}; use e.g. 2")

    def initial_masks(self, model: nn.Module, ctx: PruneContext, sparsity: float,
                      allocation: Allocation) -> Masks:
        return Masks.ones(model)

    def callbacks(self, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._record: dict = {}
        return [_OneShotCallback(self, density_of(sparsity), allocation)]

    def total_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        return recipe_epochs + self.finetune_epochs

    def extra_results(self) -> dict:
        return dict(getattr(self, "_record", {}))
