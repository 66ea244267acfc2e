"""HAM (PAPERS.md §4): one step against the closed form for SGD and Adam bases, the identity at
α = β = 0, the wrapper flags, and the scheduler driving the base lr."""
from __future__ import annotations

import pytest
import torch

from pruners.registry import ConfigError, build_config
from reparam import REPARAMS
from reparam.ham import HamOptimizer

from reparam_helpers import Driver, random_masks, regression_loss, tiny_mlp


def make(**args):
    return build_config(REPARAMS.get("ham"), args, "ham")


def grads_of(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss_fn(model).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def mirror(theta_half, g, lr, alpha, beta, clamp=5.0):
    e = -lr * (alpha * torch.sign(theta_half) * g + beta)
    if clamp:
        e = e.clamp(-clamp, clamp)
    return theta_half * torch.exp(e)




@pytest.mark.parametrize("alpha,beta", [(20.0, 1e-2), (200.0, 1e-3)])
def test_one_step_sgd_closed_form(alpha, beta):
    model, loss = tiny_mlp(), regression_loss()
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = grads_of(model, loss)
    lr, wd = 0.1, 0.01
    opt = HamOptimizer(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd),
                       alpha=alpha, beta=beta)
    opt.step()
    for n, p in model.named_parameters():
        half = theta[n] - lr * (g[n] + wd * theta[n])        # first SGD step: buffer = g + wd θ
        expected = mirror(half, g[n], lr, alpha, beta) if p.dim() >= 2 else half
        torch.testing.assert_close(p.detach(), expected, rtol=1e-13, atol=1e-15)


def test_one_step_adam_closed_form_and_scheduled_lr():
    model, loss = tiny_mlp(), regression_loss()
    lr, eps, alpha, beta = 1e-2, 1e-8, 3.0, 0.1
    base = torch.optim.Adam(model.parameters(), lr=lr, eps=eps)
    opt = HamOptimizer(base, alpha=alpha, beta=beta)
    sched = torch.optim.lr_scheduler.LambdaLR(base, lambda s: 0.5 ** s)
    for step in range(2):
        theta = {n: p.detach().clone() for n, p in model.named_parameters()}
        g = grads_of(model, loss)
        opt.step()
        eta = lr * 0.5 ** step                               # the scheduled lr of this step
        for n, p in model.named_parameters():
            if step == 0:   # Adam's first step: m̂ = g, v̂ = g² → θ − η g / (|g| + eps)
                half = theta[n] - eta * g[n] / (g[n].abs() + eps)
                expected = mirror(half, g[n], eta, alpha, beta) if p.dim() >= 2 else half
                torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-14)
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * 0.25)


@pytest.mark.parametrize("make_base", [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2),
])
def test_alpha_beta_zero_is_exactly_the_base_optimizer(make_base):
    a, b = tiny_mlp(), tiny_mlp()
    opt_a = make_base(a.parameters())
    opt_b = HamOptimizer(make_base(b.parameters()), alpha=0.0, beta=0.0)
    loss = regression_loss()
    for _ in range(5):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            loss(model).backward()
            opt.step()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), n


def test_flags_matrices_only_clamp_keep_zeros_and_max_norm():
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 3.0, -1.0]], dtype=torch.float64))
    g = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 2.0, 0.5]], dtype=torch.float64)
    lin.weight.grad, lin.bias.grad = g.clone(), torch.ones(2, dtype=torch.float64)
    bias0 = lin.bias.detach().clone()
    # lr 0 base step; mirror step uses η = lr of the group: use a base that does nothing but has lr 1
    opt = HamOptimizer(torch.optim.SGD(lin.parameters(), lr=1.0, momentum=0.0), alpha=10.0, beta=0.0,
                       clamp=5.0, max_norm=0.0)
    theta0 = lin.weight.detach().clone()
    opt.step()
    half = theta0 - g
    expected = half * torch.exp((-10.0 * torch.sign(half) * g).clamp(-5, 5))
    torch.testing.assert_close(lin.weight.detach(), expected)
    assert expected.abs().max() > 1.0 and float((-10.0 * torch.sign(half) * g).abs().max()) > 5  # clamp active
    torch.testing.assert_close(lin.bias.detach(), bias0 - 1.0)      # 1-dim: base step only
    # zeros stay zero, and the norm clip rescales
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, 400.0, -900.0], [0.0, 0.0, 600.0]], dtype=torch.float64))
    lin.weight.grad = torch.zeros(2, 3, dtype=torch.float64)
    lin.bias.grad = None
    opt2 = HamOptimizer(torch.optim.SGD([lin.weight], lr=1.0), alpha=1.0, beta=-0.0, clamp=0.0, max_norm=1000.0)
    opt2.step()
    w = lin.weight.detach()
    assert w[0, 0].item() == 0.0 and w[1, 0].item() == 0.0
    assert float(w.norm()) == pytest.approx(1000.0)


@pytest.mark.parametrize("clip_all", [True, False])
def test_max_norm_clips_biases_too_as_the_authors_wrapper(clip_all):
    """Issue 19 (6b): the wrapper rescales every parameter whose norm passes max_norm, biases included."""
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([3000.0, -4000.0], dtype=torch.float64))     # norm 5000
    lin.weight.grad, lin.bias.grad = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    opt = HamOptimizer(torch.optim.SGD(lin.parameters(), lr=1.0), alpha=1.0, beta=1e-3, max_norm=1000.0,
                       clip_all=clip_all)
    opt.step()
    assert float(lin.bias.detach().norm()) == pytest.approx(1000.0 if clip_all else 5000.0)
    assert lin.bias.detach().tolist() == pytest.approx([600.0, -800.0] if clip_all else [3000.0, -4000.0])


def test_masked_weights_stay_zero_in_training():
    model = tiny_mlp()
    masks = random_masks(model, 0.4)
    r = make(alpha=50.0, beta=1e-2)
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), epochs=1, steps_per_epoch=20)
    for _ in range(20):
        d.step(regression_loss())
    for n, w in r.effective_weights(model).items():
        assert bool((w[~masks[n]] == 0).all())
        assert bool((w[masks[n]] != 0).all())
    assert d.opt.base_optimizer.param_groups is d.opt.param_groups


@pytest.mark.parametrize("args", [{"alpha": -1.0}, {"beta": -1e-3}, {"clamp": -5.0}, {"max_norm": float("inf")}])
def test_bad_input(args):
    with pytest.raises(ConfigError) as exc:
        make(**args)
    assert "\n" not in str(exc.value)


def test_groups_added_later_and_differing_learning_rates_get_their_own_mirror_step():
    """The wrapper caches which parameters of a group it may touch and reuses its −ηβ scalar: a group
    added after some steps is picked up, and each group's step uses that group's own learning rate."""
    torch.manual_seed(0)
    a = torch.nn.Linear(6, 5).double()
    b = torch.nn.Linear(5, 3).double()
    opt = HamOptimizer(torch.optim.SGD(a.parameters(), lr=0.1), alpha=20.0, beta=1e-2)
    x = torch.randn(4, 6, dtype=torch.float64)

    def step() -> dict:
        opt.zero_grad(set_to_none=True)
        b(a(x)).pow(2).mean().backward()
        before = {id(p): p.detach().clone() for p in [*a.parameters(), *b.parameters()]}
        grads = {id(p): p.grad.detach().clone() for p in [*a.parameters(), *b.parameters()]}
        opt.step()
        return before, grads

    step()                                       # only a is optimised: b untouched
    opt.add_param_group({"params": list(b.parameters()), "lr": 0.03})
    before, grads = step()
    for mod, lr in ((a, 0.1), (b, 0.03)):
        w = mod.weight
        half = before[id(w)] - lr * grads[id(w)]
        torch.testing.assert_close(w.detach(), mirror(half, grads[id(w)], lr, 20.0, 1e-2), rtol=1e-13, atol=1e-15)
        bias = mod.bias                           # vectors: the base step only
        torch.testing.assert_close(bias.detach(), before[id(bias)] - lr * grads[id(bias)], rtol=1e-13, atol=1e-15)
