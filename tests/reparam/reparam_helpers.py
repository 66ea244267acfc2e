"""Small helpers shared by the reparam tests: a tiny float64 model and a one-step training driver."""
from __future__ import annotations

import torch
from torch import nn

from pruners import Masks
from pruners.session import build_session


def tiny_mlp(seed: int = 0, dims: tuple[int, ...] = (6, 5, 4, 3)) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).double()


def random_masks(model: nn.Module, density: float = 0.5, seed: int = 0) -> Masks:
    from pruners import prunable_parameters

    g = torch.Generator().manual_seed(seed)
    return Masks({n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model).items()})


class Driver:
    """A session of the suite's builder (:func:`pruners.session.build_session`) stepped one full-batch step
    at a time on a loss closure ``loss(model)``, so the tests can look between steps; the events and their
    order are those of :func:`pruners.session.fit` / :func:`pruners.hooks.run_step`."""

    def __init__(self, model: nn.Module, reparam, masks: Masks, make_opt, epochs: int = 10,
                 steps_per_epoch: int = 10, scheduler_factory=None, weight_pass: bool | None = None) -> None:
        self.session = build_session(model, masks, make_opt, reparam=reparam, scheduler=scheduler_factory,
                                     epochs=epochs, steps_per_epoch=steps_per_epoch, weight_pass=weight_pass)
        self.state, self.callbacks, self.enforcer = self.session.state, self.session.callbacks, self.session.enforcer
        self.opt = self.session.optimizer
        self.session.start()

    def step(self, loss_of_model) -> float:
        s = self.state
        if s.step % s.steps_per_epoch == 0:
            s.epoch = s.step // s.steps_per_epoch
            for cb in self.callbacks:
                cb.on_epoch_start(s)
        self.opt.zero_grad(set_to_none=True)
        loss = loss_of_model(s.model)
        loss.backward()
        s.loss = loss.detach()
        for cb in self.callbacks:
            cb.before_step(s)
        self.opt.step()
        if s.scheduler is not None:
            s.scheduler.step()
        for cb in self.callbacks:
            cb.after_step(s)
        s.step += 1
        if s.step % s.steps_per_epoch == 0:
            s.metrics = {}
            for cb in self.callbacks:
                cb.on_epoch_end(s)
        return float(s.loss)


def regression_loss(seed: int = 1, n: int = 16, d_in: int = 6, d_out: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    y = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    return lambda model: ((model(x) - y) ** 2).mean()
