"""Pruned weights stay exactly zero through training: weights, gradients and optimiser state."""
import pytest
import torch
from torch import nn

from pruners import MaskEnforcer, Masks, prunable_parameters


def lenet_like():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))


def random_masks(model, density=0.2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Masks({n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model).items()})


def train_steps(model, opt, enforcer, steps=200):
    g = torch.Generator().manual_seed(5)
    enforcer.apply_weights()
    for _ in range(steps):
        x = torch.randn(16, 20, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        enforcer.mask_gradients()
        opt.step()
        enforcer.apply_weights()


@pytest.mark.parametrize("make_opt", [
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
], ids=["sgd-momentum", "adamw-wd"])
def test_pruned_weights_and_state_are_exactly_zero_after_200_steps(make_opt):
    model = lenet_like()
    masks = random_masks(model)
    enforcer = MaskEnforcer.for_model(model, masks)
    opt = make_opt(model.parameters())
    before = {n: p.detach().clone() for n, p in prunable_parameters(model).items()}
    train_steps(model, opt, enforcer)
    for n, p in prunable_parameters(model).items():
        pruned = ~masks[n]
        assert torch.count_nonzero(p.detach()[pruned]) == 0
        assert torch.count_nonzero(p.grad[pruned]) == 0
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                assert torch.count_nonzero(value[pruned]) == 0, key
        assert not torch.equal(p.detach()[masks[n]], before[n][masks[n]])  # kept weights did train


def test_update_zeroes_pruned_sets_grown_to_zero_and_resets_state():
    model = lenet_like()
    masks = random_masks(model, 0.5)
    enforcer = MaskEnforcer.for_model(model, masks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_steps(model, opt, enforcer, steps=5)
    new = Masks({n: ~m for n, m in masks.items()})  # every entry changes
    changed = enforcer.update(new, opt)
    for n, p in prunable_parameters(model).items():
        assert changed[n] == p.numel()
        assert torch.count_nonzero(p.detach()) == 0          # old kept are pruned, grown start at 0
        assert torch.count_nonzero(opt.state[p]["exp_avg"]) == 0
        assert torch.count_nonzero(opt.state[p]["exp_avg_sq"]) == 0
    assert enforcer.masks.equal(new)


def test_dense_masks_put_nothing_on_the_hot_path():
    model = lenet_like()
    assert not MaskEnforcer.for_model(model, Masks.ones(model)).active
