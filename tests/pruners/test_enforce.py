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


# --- the attached fast path: gradient hooks and the skipped weight pass -----------------------------

def _run(make_opt, attached: bool, steps: int = 60):
    model = lenet_like()
    masks = random_masks(model, 0.3)
    enforcer = MaskEnforcer.for_model(model, masks)
    opt = make_opt(model.parameters())
    enforcer.apply_weights()
    if attached:
        enforcer.attach(opt)
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        x = torch.randn(16, 20, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if attached:
            opt.step()
            enforcer.step_done()
        else:
            enforcer.mask_gradients()
            opt.step()
            enforcer.apply_weights()
    return model, opt, enforcer, masks


OPTIMIZERS = {
    "sgd-momentum-wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd-nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adamw-wd": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adamw-fused": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, fused=True),
    "adam-amsgrad-coupled-wd": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3, amsgrad=True),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_attached_path_is_bit_identical_to_explicit_passes(name):
    """Hooks + skipped weight pass give exactly the weights and state of mask-grad / step / mask-weights."""
    ref_model, ref_opt, _, masks = _run(OPTIMIZERS[name], attached=False)
    model, opt, enforcer, _ = _run(OPTIMIZERS[name], attached=True)
    assert enforcer.attached and enforcer.weight_pass is False
    for (n, p), (_, q) in zip(ref_model.named_parameters(), model.named_parameters()):
        assert torch.equal(p, q), n
        for key, value in ref_opt.state[p].items():
            assert torch.equal(value, opt.state[q][key]), (n, key)
    for n, p in prunable_parameters(model).items():
        assert torch.count_nonzero(p.detach()[~masks[n]]) == 0
        assert torch.count_nonzero(p.grad[~masks[n]]) == 0


def test_weight_pass_is_kept_where_zeros_are_not_guaranteed():
    model = lenet_like()
    masks = random_masks(model)

    class Custom(torch.optim.SGD):   # a subclass may change the step
        pass

    cases = {
        "sgd": (torch.optim.SGD(model.parameters(), lr=0.1), False),
        "adam eps=0": (torch.optim.Adam(model.parameters(), lr=0.1, eps=0.0), True),
        "subclass": (Custom(model.parameters(), lr=0.1), True),
        "rmsprop (not listed)": (torch.optim.RMSprop(model.parameters(), lr=0.1), True),
        "no optimiser": (None, True),
    }
    for label, (opt, expected) in cases.items():
        enforcer = MaskEnforcer.for_model(model, masks)
        enforcer.attach(opt)
        assert enforcer.weight_pass is expected, label
        enforcer.detach()
    declared = torch.optim.RMSprop(model.parameters(), lr=0.1)
    declared.preserves_zeros = True
    enforcer = MaskEnforcer.for_model(model, masks)
    enforcer.attach(declared)
    assert enforcer.weight_pass is False
    enforcer.detach()
    forced = MaskEnforcer.for_model(model, masks, weight_pass=True)
    forced.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    assert forced.weight_pass is True
    forced.detach()


def test_factor_targets_need_no_hook_and_follow_the_optimiser_for_the_weight_pass():
    from pruners.enforce import mark_grad_zero_where_masked

    model = lenet_like()
    masks = random_masks(model)
    params = prunable_parameters(model)
    factors = {n: [params[n], nn.Parameter(params[n].detach().clone())] for n in masks}
    for ps in factors.values():
        mark_grad_zero_where_masked(*ps)
    enforcer = MaskEnforcer(factors, masks)
    enforcer.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    assert enforcer.weight_pass is False and enforcer.hook_count == 0   # no gradient needs a hook
    enforcer = MaskEnforcer(factors, masks)
    enforcer.attach(torch.optim.RMSprop(model.parameters(), lr=0.1))
    assert enforcer.weight_pass is True


def test_hooks_mask_accumulated_grads_only_while_attached_and_follow_mask_updates():
    model = lenet_like()
    masks = random_masks(model, 0.5)
    enforcer = MaskEnforcer.for_model(model, masks)
    enforcer.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    x, y = torch.randn(8, 20), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    params = prunable_parameters(model)
    for n, p in params.items():
        assert torch.count_nonzero(p.grad[~masks[n]]) == 0
    # torch.autograd.grad (SNIP, RigL's dense gradient) is not affected
    dense = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), list(params.values()))
    assert all(torch.count_nonzero(g[~masks[n]]) > 0 for g, n in zip(dense, params))
    # a mask update is followed by the same hooks
    new = Masks({n: ~m for n, m in masks.items()})
    enforcer.update(new)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    for n, p in params.items():
        assert torch.count_nonzero(p.grad[masks[n]]) == 0
    enforcer.detach()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    assert all(torch.count_nonzero(p.grad[masks[n]]) > 0 for n, p in params.items())


def test_dense_layers_get_no_hook_until_an_update_prunes_them():
    model = lenet_like()
    enforcer = MaskEnforcer.for_model(model, Masks.ones(model))
    enforcer.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    assert enforcer.attached and enforcer.hook_count == 0          # dense training pays nothing
    masks = random_masks(model, 0.5)
    enforcer.update(masks)
    assert enforcer.hook_count == len(masks)
    x, y = torch.randn(8, 20), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    for n, p in prunable_parameters(model).items():
        assert torch.count_nonzero(p.grad[~masks[n]]) == 0
    enforcer.detach()
    assert not enforcer.attached and enforcer.hook_count == 0
