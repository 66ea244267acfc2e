"""Small full-batch float64 training loops for the theory toys, built from the project's parts.

:class:`Driver` calls a reparam's callbacks around ``optimizer.step()`` in the order of
``benchmark.train.train`` (``on_start``, ``on_epoch_start``, ``before_step``, step, ``after_step``,
``on_epoch_end``), so a reparam's step (PILoT's α schedule, Sign-In's reset, the weight-decay
switch-off, HAM's mirror step, steepest descent) is the project's code and not a re-implementation.
The toys run thousands of full-batch steps; the harness' per-epoch evaluation and run folders would
dominate their cost, which is why they have this loop instead of ``sparsebench run``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from pruners import Callback, MaskEnforcer, Masks, TrainState, prunable_parameters


def dense_masks(model: nn.Module) -> Masks:
    """All-ones masks over the prunable parameters (the toys do not prune)."""
    return Masks({n: torch.ones(p.shape, dtype=torch.bool) for n, p in prunable_parameters(model).items()})


def sparse_regression(**kwargs: object) -> tuple[Tensor, Tensor, Tensor]:
    """``(X, y, x*)`` of the project's ``sparse-regression`` data set in float64 (``y`` of shape (n,))."""
    from benchmark.tasks import load_data

    d = load_data("sparse-regression", **kwargs)
    return d.train_x.double(), d.train_y.double().reshape(-1), d.extra["x_star"].double()


def stacked_linear(rows: Sequence[Tensor]) -> nn.Linear:
    """A bias-free ``nn.Linear(n, R)`` in float64 whose row r is ``rows[r]``.

    Row r is one independent run of the depth-1 ``diagonal`` model (prediction ``X @ x_r``); with the
    loss summed over rows (:func:`stacked_mse`) each row receives exactly its own run's gradient, so
    R runs cost one.  A factorising reparam (PILoT, spred) then factorises every row elementwise.
    """
    w = torch.stack([r.reshape(-1).double() for r in rows])
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    return lin


def stacked_mse(model: nn.Module, X: Tensor, y: Tensor) -> Tensor:
    """Σ_r mean_i (X_i · x_r − y_i)²: the sum of the R runs' own MSE losses."""
    return ((model(X) - y.unsqueeze(1)) ** 2).mean(0).sum()


def diagonal_init(n: int, seed: int, scale: float, depth: int = 1, init: str = "spred", **kw: object) -> nn.Module:
    """The project's ``diagonal`` model (float64), initialised under ``torch.manual_seed(seed)``."""
    from benchmark.tasks import MODELS

    torch.manual_seed(seed)
    return MODELS.get("diagonal")((n,), 1, depth=depth, init=init, scale=scale, **kw).double()


class Driver:
    """Full-batch training with a reparam's (and extra) callbacks, as ``benchmark.train`` calls them.

    Args:
        model: the model (already float64); ``reparam.apply`` is called on it with dense masks.
        reparam: a :class:`reparam.Reparam` or ``None``.
        make_optimizer: ``params -> optimizer`` (the reparam may wrap or replace it).
        steps_per_epoch: steps per "epoch" (the unit of the reparams' schedules).
        epochs: number of epochs (``total_steps = epochs × steps_per_epoch``).
        callbacks: extra callbacks run after the reparam's.
        masks: sparse training: the masks are applied, the reparam installed on them and a
            :class:`pruners.MaskEnforcer` runs first among the callbacks (``None``: dense).
        scheduler_factory: ``optimizer -> lr scheduler`` over the base optimiser, stepped after each step.
        weight_pass: the enforcer's post-step multiply (see :class:`pruners.MaskEnforcer`).
    """

    def __init__(self, model: nn.Module, reparam, make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
                 steps_per_epoch: int, epochs: int, callbacks: Sequence[Callback] = (),
                 masks: Masks | None = None,
                 scheduler_factory: Callable[[torch.optim.Optimizer], Any] | None = None,
                 weight_pass: bool | None = None) -> None:
        self.enforcer: MaskEnforcer | None = None
        if masks is not None:
            # sparse: masks applied, reparam installed on them, the enforcer first (as the runner does)
            masks.apply_(model)
            if reparam is not None:
                reparam.apply(model, masks)
            targets = reparam.mask_targets(model, masks) if reparam is not None else \
                {n: [p] for n, p in prunable_parameters(model).items() if n in masks}
            self.enforcer = MaskEnforcer(targets, masks, weight_pass=weight_pass)
        elif reparam is not None:
            reparam.apply(model, dense_masks(model))
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad])
        self.optimizer = reparam.wrap_optimizer(opt) if reparam is not None else opt
        self.scheduler = (scheduler_factory(getattr(self.optimizer, "base_optimizer", self.optimizer))
                          if scheduler_factory is not None else None)
        self.callbacks: list[Callback] = [*([self.enforcer] if self.enforcer is not None else []),
                                          *(reparam.callbacks() if reparam is not None else []), *callbacks]
        self.model, self.reparam = model, reparam
        self.state = TrainState(model=model, optimizer=self.optimizer, masks=self.enforcer, ctx=None, epochs=epochs,
                                steps_per_epoch=steps_per_epoch, scheduler=self.scheduler, reparam=reparam)
        for cb in self.callbacks:
            cb.on_start(self.state)

    @property
    def done(self) -> bool:
        return self.state.step >= self.state.total_steps

    def step(self, loss_fn: Callable[[nn.Module], Tensor]) -> float:
        """One optimisation step on ``loss_fn(model)``; returns the loss before the step."""
        s = self.state
        if s.step % s.steps_per_epoch == 0:
            s.epoch = s.step // s.steps_per_epoch
            for cb in self.callbacks:
                cb.on_epoch_start(s)
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(self.model)
        loss.backward()
        s.loss = loss.detach()
        for cb in self.callbacks:
            cb.before_step(s)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        for cb in self.callbacks:
            cb.after_step(s)
        s.step += 1
        if s.step % s.steps_per_epoch == 0:
            s.metrics = {}
            for cb in self.callbacks:
                cb.on_epoch_end(s)
        return float(s.loss)


def save_figure(fig, path) -> None:
    """Save a matplotlib figure compactly (PNG, 90 dpi) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plt():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
