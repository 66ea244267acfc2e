"""θ = M ⊙ m ⊙ w machinery and Sign-In (PAPERS.md §1–2), float64 on tiny tensors."""
from __future__ import annotations

import pytest
import torch

from pruners import prunable_parameters
from pruners.registry import build_config
from reparam import REPARAMS
from reparam.factorized import balanced_split, effective_weights, factor_pairs, resplit

from reparam_helpers import Driver, random_masks, regression_loss, tiny_mlp


def make(name: str, **args):
    return build_config(REPARAMS.get(name), args, name)


@pytest.mark.parametrize("gamma", [1.0, 0.3, 2.5])
def test_balanced_split_formula(gamma):
    theta = torch.tensor([-3.0, -0.2, 0.0, 1e-8, 0.7, 4.0], dtype=torch.float64)
    m, w = balanced_split(theta, gamma)
    torch.testing.assert_close(m * w, theta, rtol=0, atol=1e-15)
    torch.testing.assert_close(m * m - w * w, torch.full_like(theta, gamma), rtol=1e-12, atol=1e-12)
    assert bool((m > 0).all())
    expected_m = torch.sqrt((gamma + torch.sqrt(gamma ** 2 + 4 * theta ** 2)) / 2)
    torch.testing.assert_close(m, expected_m, rtol=0, atol=0)
    assert m[2].item() == pytest.approx(gamma ** 0.5) and w[2].item() == 0.0   # θ = 0 → (sqrt γ, 0)


def test_spred_split_is_gamma_zero():
    theta = torch.tensor([-4.0, -0.25, 0.0, 9.0], dtype=torch.float64)
    m, w = balanced_split(theta, 0.0)
    torch.testing.assert_close(m, torch.tensor([2.0, 0.5, 0.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(w, torch.tensor([-2.0, -0.5, 0.0, 3.0], dtype=torch.float64))


def test_apply_keeps_theta_masks_both_factors_and_merge_restores_weights():
    model = tiny_mlp()
    masks = random_masks(model, 0.5)
    masks.apply_(model)
    before = {n: p.detach().clone() for n, p in prunable_parameters(model).items()}
    r = make("signin")
    r.apply(model, masks)
    assert prunable_parameters(model) == {}          # weights are computed while parametrised
    eff = r.effective_weights(model)
    assert list(eff) == list(before)
    for n in before:
        torch.testing.assert_close(eff[n], before[n], rtol=0, atol=1e-15)
    targets = r.mask_targets(model, masks)
    pairs = factor_pairs(model)
    for n, (m, w) in pairs.items():
        assert targets[n] == [m, w]
        assert bool((m[~masks[n]] == 0).all()) and bool((w[~masks[n]] == 0).all())
        kept = masks[n]
        torch.testing.assert_close(m[kept] ** 2 - w[kept] ** 2, torch.ones_like(m[kept]), rtol=0, atol=1e-12)
    r.merge(model)
    after = prunable_parameters(model)
    assert list(after) == list(before)
    for n in before:
        torch.testing.assert_close(after[n].detach(), before[n], rtol=0, atol=1e-15)
    assert r.effective_weights(model).keys() == before.keys()   # works after merge too (sign flips)


def test_signin_reset_keeps_theta_and_restores_gamma():
    model = tiny_mlp()
    masks = random_masks(model, 0.6)
    r = make("signin", reset_every=1, gamma=1.0)
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.05),
               epochs=3, steps_per_epoch=5)
    loss = regression_loss()
    for _ in range(5):
        d.step(loss)
    pairs = factor_pairs(model)
    gam = torch.cat([(m * m - w * w)[masks[n]] for n, (m, w) in pairs.items()])
    assert float((gam - 1).abs().max().detach()) > 1e-4                   # weight decay shrank γ
    theta = {n: (m * w).detach().clone() for n, (m, w) in pairs.items()}
    resplit(pairs, 1.0, d.opt)
    for n, (m, w) in pairs.items():
        torch.testing.assert_close((m * w).detach(), theta[n], rtol=0, atol=1e-12)
        kept = masks[n]
        torch.testing.assert_close((m * m - w * w)[kept], torch.ones_like(m[kept]), rtol=0, atol=1e-12)
        assert bool((m[~kept] == 0).all()) and bool((w[~kept] == 0).all())
        for p in (m, w):
            assert float(d.opt.state[p]["momentum_buffer"].abs().max()) == 0.0   # zeroed by default


def test_signin_callback_resets_at_epoch_start_without_changing_theta():
    model = tiny_mlp()
    masks = random_masks(model, 0.6)
    r = make("signin", reset_every=2, reset_state="keep")
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1),
               epochs=4, steps_per_epoch=3)
    loss = regression_loss()
    for _ in range(6):      # epochs 0 and 1
        d.step(loss)
    pairs = factor_pairs(model)
    theta = {n: (m * w).detach().clone() for n, (m, w) in pairs.items()}
    bufs = {id(p): d.opt.state[p]["momentum_buffer"].clone() for mw in pairs.values() for p in mw}
    d.state.epoch = 2
    for cb in d.callbacks:
        cb.on_epoch_start(d.state)   # epoch 2 = 1 · p: reset
    for n, (m, w) in pairs.items():
        torch.testing.assert_close((m * w).detach(), theta[n], rtol=0, atol=1e-12)
        kept = masks[n]
        torch.testing.assert_close((m * m - w * w)[kept], torch.ones_like(m[kept]), rtol=0, atol=1e-12)
        for p in (m, w):
            torch.testing.assert_close(d.opt.state[p]["momentum_buffer"], bufs[id(p)])   # "keep"
    d.state.epoch = 3
    before = {n: (m.detach().clone(), w.detach().clone()) for n, (m, w) in pairs.items()}
    for cb in d.callbacks:
        cb.on_epoch_start(d.state)   # epoch 3: no reset
    for n, (m, w) in pairs.items():
        assert torch.equal(m, before[n][0]) and torch.equal(w, before[n][1])


def test_sign_flips_happen_through_w_and_masked_entries_stay_zero():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.05, -0.05, 0.3, 0.2]], dtype=torch.float64))
    model = torch.nn.Sequential(lin)
    from pruners import Masks
    masks = Masks({"0.weight": torch.tensor([[True, True, True, False]])})
    r = make("signin")
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.01), epochs=1, steps_per_epoch=400)
    x = torch.eye(4, dtype=torch.float64)
    target = torch.tensor([[-0.5], [0.5], [0.3], [1.0]], dtype=torch.float64)   # signs of entries 0, 1 flip
    loss = lambda model: ((model(x) - target) ** 2).sum()
    (m, w), = factor_pairs(model).values()
    for _ in range(300):
        d.step(loss)
        assert bool((m[0, :3] > 0).all())          # the sign never lives in m
        assert m[0, 3].item() == 0.0 and w[0, 3].item() == 0.0
    theta = effective_weights(model)["0.weight"][0]
    assert theta[0] < 0 < theta[1]                 # flipped, through w
    assert w[0, 0] < 0 < w[0, 1]
    assert theta[3].item() == 0.0


def test_regrown_entries_get_the_split_of_zero():
    from pruners import Masks
    model = tiny_mlp()
    masks = random_masks(model, 0.5)
    r = make("signin")
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.01), epochs=2, steps_per_epoch=5)
    d.step(regression_loss())
    name = next(iter(masks))
    grown = ~masks[name]
    new = Masks({n: (m | grown if n == name else m) for n, m in masks.items()})
    d.enforcer.update(new, d.opt)
    d.step(regression_loss())
    m, w = factor_pairs(model)[name]
    assert bool((m[grown] != 0).all())            # no longer stuck at the m = w = 0 saddle


def test_signin_check_recipe_and_validation():
    from benchmark.spec import make_spec
    from pruners.registry import ConfigError
    with pytest.raises(ConfigError, match="longer than training"):
        make_spec(task="digits-mlp", pruner="random", sparsity=0.5, reparam="signin",
                  reparam_args={"reset_every": 5}, recipe={"epochs": 3})
    for bad in ({"reset_every": 0}, {"reset_every": -2}, {"gamma": -1.0}, {"gamma": 0.0},
                {"reset_state": "scale"}):
        with pytest.raises(ConfigError) as exc:
            make("signin", **bad)
        assert "\n" not in str(exc.value)


def test_signin_layer_gamma_sets_each_layers_split_at_init_and_reset():
    from pruners.registry import ConfigError

    model = tiny_mlp()
    masks = random_masks(model, 0.6)
    r = make("signin", gamma=1.0, layer_gamma={"4.weight": 4.0})      # the output layer: γ = 4, others 1
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=0.05), epochs=2, steps_per_epoch=3)
    pairs = factor_pairs(model)

    def gammas() -> dict[str, float]:
        return {n: float((m * m - w * w)[masks[n]].mean().detach()) for n, (m, w) in pairs.items()}
    assert gammas() == pytest.approx({"0.weight": 1.0, "2.weight": 1.0, "4.weight": 4.0}, abs=1e-12)
    loss = regression_loss()
    for _ in range(3):
        d.step(loss)
    assert gammas()["4.weight"] < 4.0 - 1e-4                              # weight decay shrank it
    resplit(pairs, {n: r.gamma_of(n) for n in pairs}, d.opt)               # what the reset does
    assert gammas() == pytest.approx({"0.weight": 1.0, "2.weight": 1.0, "4.weight": 4.0}, abs=1e-12)
    with pytest.raises(ConfigError, match="'4.weigth'.*did you mean '4.weight'"):
        make("signin", layer_gamma={"4.weigth": 2.0}).apply(tiny_mlp(), random_masks(tiny_mlp(), 0.6))
    with pytest.raises(ConfigError, match="must be a number > 0"):
        make("signin", layer_gamma={"4.weight": 0.0})


K = 201   # Adam's counter at the first step after the reset when the moments alone are zeroed


@pytest.mark.parametrize("reset_state,first_step", [
    ("zero", 1.0), ("moments", (0.1 / (1 - 0.9 ** K)) / (0.001 / (1 - 0.999 ** K)) ** 0.5)])
def test_signin_reset_under_adam_restarts_the_step_counter_with_the_moments(reset_state, first_step):
    """Issue 19 (6a): after a reset with ``zero`` Adam's first update of a factor is lr · sign(g) (a fresh
    start: bias-corrected moments of one step); ``moments`` keeps the counter k of the steps before, and
    the moments of one step are bias-corrected as if they held k: ((1 − β₁)/(1 − β₁ᵏ)) / sqrt((1 − β₂)/(1 − β₂ᵏ))
    × lr (1.35 × lr at k = 201, → 3.16 × lr for k ≫ 1/(1 − β₂))."""
    model = tiny_mlp()
    masks = random_masks(model, 0.6)
    r = make("signin", reset_every=1, reset_state=reset_state)
    lr = 1e-3
    d = Driver(model, r, masks, lambda ps: torch.optim.Adam(ps, lr=lr, eps=1e-30), epochs=3, steps_per_epoch=200)
    loss = regression_loss()
    for _ in range(200):                     # epoch 0: the counter reaches 200 (bias correction ≈ 1)
        d.step(loss)
    pairs = factor_pairs(model)
    d.state.epoch = 1
    for cb in d.callbacks:                   # the reset at the start of epoch 1, then one step
        cb.on_epoch_start(d.state)
    steps = {int(d.opt.state[m]["step"]) for m, _ in pairs.values()}
    before = {n: m.detach().clone() for n, (m, _) in pairs.items()}
    d.state.step += 1                        # past the epoch boundary: Driver.step does not reset again
    d.opt.zero_grad(set_to_none=True)
    loss(model).backward()
    for cb in d.callbacks:
        cb.before_step(d.state)
    d.opt.step()
    assert steps == ({0} if reset_state == "zero" else {200})
    moved = torch.cat([(m.detach() - before[n])[masks[n] & (m.grad != 0)].abs() for n, (m, _) in pairs.items()])
    assert moved.numel() > 0
    assert moved.div(lr).mean().item() == pytest.approx(first_step, rel=1e-3)
