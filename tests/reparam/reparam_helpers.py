"""Small helpers shared by the reparam tests: a tiny float64 model and a one-step training driver."""
from __future__ import annotations

import torch
from torch import nn

from pruners import MaskEnforcer, Masks, TrainState


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
    """Runs training steps the way ``benchmark.train`` does (callbacks around ``optimizer.step``)."""

    def __init__(self, model: nn.Module, reparam, masks: Masks, make_opt, epochs: int = 10,
                 steps_per_epoch: int = 10, scheduler_factory=None) -> None:
        masks.apply_(model)
        reparam.apply(model, masks)
        self.enforcer = MaskEnforcer(reparam.mask_targets(model, masks), masks)
        opt = make_opt([p for p in model.parameters() if p.requires_grad])
        self.opt = reparam.wrap_optimizer(opt)
        self.scheduler = scheduler_factory(getattr(self.opt, "base_optimizer", self.opt)) if scheduler_factory else None
        self.callbacks = [self.enforcer, *reparam.callbacks()]
        self.state = TrainState(model=model, optimizer=self.opt, masks=self.enforcer, ctx=None, epochs=epochs,
                                steps_per_epoch=steps_per_epoch, scheduler=self.scheduler, reparam=reparam)
        self.model, self.reparam = model, reparam
        for cb in self.callbacks:
            cb.on_start(self.state)

    def step(self, loss_fn) -> None:
        s = self.state
        if s.step % s.steps_per_epoch == 0:
            s.epoch = s.step // s.steps_per_epoch
            for cb in self.callbacks:
                cb.on_epoch_start(s)
        self.opt.zero_grad(set_to_none=True)
        loss_fn(self.model).backward()
        for cb in self.callbacks:
            cb.before_step(s)
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        for cb in self.callbacks:
            cb.after_step(s)
        s.step += 1
        if s.step % s.steps_per_epoch == 0:
            s.metrics = {}
            for cb in self.callbacks:
                cb.on_epoch_end(s)


def regression_loss(seed: int = 1, n: int = 16, d_in: int = 6, d_out: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    y = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    return lambda model: ((model(x) - y) ** 2).mean()
