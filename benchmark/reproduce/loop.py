"""Full-batch float64 training of the theory toys through the suite's session and loop.

:func:`train_toy` builds the session with :func:`pruners.session.build_session` and trains it with
:func:`pruners.session.fit`, so a reparam's step (PILoT's α schedule, Sign-In's reset, the weight-decay
switch-off, HAM's mirror step, steepest descent) is the project's code and not a re-implementation.
The toys run thousands of one-step epochs without run folders or evaluation; what they record per step
is a probe called after every step.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from pruners import Callback, Masks, TrainState
from pruners.session import AfterStep, Session, build_session, fit


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


def stacked_mse(out: Tensor, y: Tensor) -> Tensor:
    """Σ_r mean_i (X_i · x_r − y_i)² of the outputs ``out = model(X)``: the sum of the R runs' own MSE losses."""
    return ((out - y.unsqueeze(1)) ** 2).mean(0).sum()


def diagonal_init(n: int, seed: int, scale: float, depth: int = 1, init: str = "spred", **kw: object) -> nn.Module:
    """The project's ``diagonal`` model (float64), initialised under ``torch.manual_seed(seed)``."""
    from benchmark.tasks import MODELS

    torch.manual_seed(seed)
    return MODELS.get("diagonal")((n,), 1, depth=depth, init=init, scale=scale, **kw).double()


def train_toy(model: nn.Module, reparam, make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
              batch: tuple[Tensor, Tensor], loss_fn: Callable[[Tensor, Tensor], Tensor], steps: int, *,
              steps_per_epoch: int = 1, callbacks: Sequence[Callback] = (), masks: Masks | None = None,
              scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
              probe: Callable[[TrainState, int], bool | None] | None = None) -> Session:
    """Full-batch training of a toy on ``batch`` for ``steps`` steps through the suite's session and loop
    (:func:`pruners.session.build_session`, :func:`pruners.session.fit`): the reparam's callbacks, then
    ``callbacks``, then ``probe(state, steps_done)`` after every step (a true return stops training).  ``steps_per_epoch`` is the unit of
    the reparams' schedules (Sign-In's reset period, PILoT's α decay).  The loss is not checked for
    divergence (a toy records what happens).  Returns the session (its state holds the step count)."""
    session = build_session(model, masks, make_optimizer, reparam=reparam, scheduler=scheduler,
                            callbacks=[*callbacks, *([AfterStep(lambda s: probe(s, s.step + 1))] if probe else [])],
                            epochs=steps // steps_per_epoch, steps_per_epoch=steps_per_epoch)
    fit(session, [batch] * steps_per_epoch, loss_fn, check_loss=False)
    return session


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
