"""Small helpers shared by the reparam tests: a tiny float64 model and a one-step training driver."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.reproduce import loop
from pruners import Masks


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


class Driver(loop.Driver):
    """The project's full-batch loop (:class:`benchmark.reproduce.loop.Driver`) on sparse masks, with
    the signature these tests use; ``opt`` is the (possibly wrapped) optimiser."""

    def __init__(self, model: nn.Module, reparam, masks: Masks, make_opt, epochs: int = 10,
                 steps_per_epoch: int = 10, scheduler_factory=None) -> None:
        super().__init__(model, reparam, make_opt, steps_per_epoch, epochs, masks=masks,
                         scheduler_factory=scheduler_factory)
        self.opt = self.optimizer


def regression_loss(seed: int = 1, n: int = 16, d_in: int = 6, d_out: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    y = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    return lambda model: ((model(x) - y) ** 2).mean()
