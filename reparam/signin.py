"""Sign-In (Gadhikar*, Jacobs*, Zhou, Burkholz, NeurIPS 2025, arXiv 2504.12801): θ = M ⊙ m ⊙ w with
periodic balanced re-splits that induce sign flips in sparse training from scratch (PAPERS.md §2).

Every prunable weight of the PaI-masked network is written θ = M ⊙ m ⊙ w (:mod:`reparam.factorized`);
at the start and every ``reset_every`` epochs, (m, w) is re-split with the balanced split of PAPERS.md
§1, ``m = sqrt((γ + sqrt(γ² + 4θ²)) / 2)``, ``w = θ / m``, so θ is unchanged and ``m² − w² = γ``.
Gradient flow then moves θ with inverse metric ``sqrt(4θ² + γ²) ≥ γ``: weights near zero keep moving
and can cross zero, the sign living in ``w`` (``m ≥ sqrt γ > 0`` as long as γ is conserved).  Weight
decay from the recipe applies to m and w (it shrinks γ — one reason for the reset).

Choices on the points PAPERS.md marks OPEN (all hyperparameters):

* ``reset_every`` (p): epochs between resets; default 1.  Resets run at the start of epochs p, 2p, …;
  the split at epoch 0 is the initialisation.  A period longer than training is refused
  (:meth:`SignIn.check_recipe`).
* ``gamma``: the reset target, default 1 (the PILoT value; the paper's β ↔ γ²/4).
* ``reset_state``: ``"zero"`` (default) gives m and w a fresh optimiser state at a reset: momentum /
  Adam moments zeroed (they were accumulated in the old coordinates) and Adam's step counter too, so
  bias correction treats the next update as a first one; ``"moments"`` zeroes the moments but keeps
  the counter (the behaviour before issue 19: under Adam the updates right after a reset were ≈ 2.5×
  and 3.4× the learning rate); ``"keep"`` leaves the state.  SGD has no counter: ``zero`` and
  ``moments`` coincide there (every committed result uses SGD).
* ``layer_gamma``: per-layer reset targets, ``{weight name: γ}`` overriding ``gamma`` for those layers
  (default none).  The single-neuron theorem's case (a < 0, w > 0) needs the outer weight's scaling
  larger than the inner one's: with one γ on both and no weight decay, G(a) − G(w) with the same G is
  conserved and the flow recovers exactly the initialisations gradient flow does
  (docs/reproductions/signin-neuron.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from pruners.hooks import Callback, TrainState
from pruners.registry import ConfigError, did_you_mean
from reparam.base import register_reparam
from reparam.factorized import FactorizedReparam, gamma_stats, resplit

RESET_STATES = ("zero", "moments", "keep")


class SignInReset(Callback):
    """Re-split (m, w) every ``p`` epochs (at the start of epochs p, 2p, …); logs mean γ per epoch."""

    def __init__(self, reparam: "SignIn") -> None:
        self.reparam = reparam
        self.resets = 0

    def on_epoch_start(self, state: TrainState) -> None:
        p = self.reparam.reset_every
        if state.epoch > 0 and state.epoch % p == 0:
            resplit(self.reparam.pairs, {n: self.reparam.gamma_of(n) for n in self.reparam.pairs}, state.optimizer,
                    reset_state=self.reparam.reset_state != "keep", reset_step=self.reparam.reset_state == "zero")
            self.resets += 1

    def on_epoch_end(self, state: TrainState) -> None:
        masks = state.masks.masks if state.masks is not None else None
        state.metrics["signin_gamma_mean"] = gamma_stats(self.reparam.pairs, masks)
        state.metrics["signin_resets"] = self.resets

    def state_dict(self) -> dict:
        return {"resets": self.resets}

    def load_state_dict(self, state: dict) -> None:
        self.resets = int(state.get("resets", 0))


@register_reparam("signin")
@dataclass
class SignIn(FactorizedReparam):
    """Sign-In: θ = M ⊙ m ⊙ w, balanced split with target γ at the start and every ``reset_every`` epochs."""

    description = "Sign-In: θ = M⊙m⊙w with a balanced re-split every p epochs (sign flips for PaI)"
    paper = "Gadhikar, Jacobs, Zhou, Burkholz. Sign-In to the Lottery. NeurIPS 2025 (arXiv 2504.12801)"

    reset_every: int = 1
    gamma: float = 1.0
    reset_state: str = "zero"
    layer_gamma: dict = field(default_factory=dict)

    def validate(self) -> None:
        if isinstance(self.reset_every, bool) or not isinstance(self.reset_every, int) or self.reset_every < 1:
            raise ConfigError(f"signin reset_every must be a positive number of epochs, got {self.reset_every!r}; "
                              "use e.g. reset_every = 1")
        if not self.gamma > 0:
            raise ConfigError(f"signin gamma must be > 0, got {self.gamma!r}; use gamma = 1 (the balanced split)")
        for name, g in self.layer_gamma.items():
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not g > 0:
                raise ConfigError(f"signin layer_gamma[{name!r}] must be a number > 0, got {g!r}; "
                                  "e.g. layer_gamma = {{ \"out.weight\" = 4.0 }}")
        if self.reset_state not in RESET_STATES:
            raise ConfigError(f"signin reset_state {self.reset_state!r} is unknown; choose one of "
                              f"{', '.join(RESET_STATES)}")

    def check_recipe(self, recipe: object) -> None:
        """Refuse a reset period longer than training."""
        epochs = int(getattr(recipe, "epochs"))
        if self.reset_every > epochs:
            raise ConfigError(f"signin reset_every = {self.reset_every} epochs is longer than training "
                              f"({epochs} epochs); set reset_every <= {epochs}")

    def init_gamma(self) -> float:
        return float(self.gamma)

    def gamma_of(self, name: str) -> float:
        return float(self.layer_gamma.get(name, self.gamma))

    def check_layers(self, names: Sequence[str]) -> None:
        unknown = sorted(set(self.layer_gamma) - set(names))
        if unknown:
            raise ConfigError(f"signin layer_gamma names {unknown[0]!r}, which is not a prunable weight of the model"
                              f"{did_you_mean(unknown[0], list(names))}; prunable weights: {', '.join(names)}")

    @property
    def split_gamma(self) -> float:  # type: ignore[override]
        return float(self.gamma)

    def callbacks(self) -> list[Callback]:
        return [*super().callbacks(), SignInReset(self)]
