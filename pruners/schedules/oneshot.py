"""``oneshot``: train dense, prune once, fine-tune (Han et al. 2015, one prune step).

Train dense for the recipe's epochs, prune once with the pruner's score of the trained network under
the run's allocation, fine-tune the sparse network for ``finetune_epochs``.  The run trains
``recipe.epochs + finetune_epochs`` epochs under one learning-rate schedule stretched over the whole
run (the fine-tuning phase runs on the decayed tail, the low learning rate Han et al. fine-tune
with).  With ``finetune_epochs = 0`` the network is pruned after the last step and not fine-tuned.
"""
from __future__ import annotations

from dataclasses import dataclass

from pruners.allocation import Allocation
from pruners.hooks import Callback, TrainState
from pruners.registry import ConfigError
from pruners.schedules.base import Schedule, register_schedule


class _OneShotCallback(Callback):
    def __init__(self, schedule: "OneShot", pruner, density: float, allocation: Allocation) -> None:
        self.schedule, self.pruner, self.density, self.allocation = schedule, pruner, density, allocation
        self.done = False

    def _prune(self, state: TrainState) -> None:
        masks = self.pruner.training_select(state, self.density, self.allocation)
        state.masks.update(masks, state.optimizer)
        self.done = True
        self.schedule._record = {"prune_epoch": state.epoch, "prune_step": state.step,
                                 "density_after_prune": masks.density()}

    def on_epoch_start(self, state: TrainState) -> None:
        if not self.done and state.epoch == state.epochs - self.schedule.finetune_epochs:
            self._prune(state)

    def on_end(self, state: TrainState) -> None:
        if not self.done:  # finetune_epochs = 0: prune after the last step
            self._prune(state)

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = bool(state["done"])


@register_schedule("oneshot")
@dataclass
class OneShot(Schedule):
    """Dense training, one prune step, ``finetune_epochs`` of sparse fine-tuning (total = recipe + fine-tune).

    Attributes:
        finetune_epochs: epochs of sparse fine-tuning after the prune step (≥ 0).
    """

    finetune_epochs: int = 2

    description = "train dense, prune once, fine-tune"

    def validate(self) -> None:
        if self.finetune_epochs < 0:
            raise ConfigError(f"oneshot finetune_epochs must be >= 0, got {self.finetune_epochs}; use e.g. 2")

    def callbacks(self, pruner, sparsity: float, allocation: Allocation) -> list[Callback]:
        self._record: dict = {}
        return [_OneShotCallback(self, pruner, 1.0 - float(sparsity), allocation)]

    def total_epochs(self, recipe_epochs: int, sparsity: float) -> int:
        return recipe_epochs + self.finetune_epochs

    def extra_results(self) -> dict:
        return dict(getattr(self, "_record", {}))
