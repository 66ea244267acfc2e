"""Steepest descent w.r.t. L_p (PAPERS.md §6): the step formula and the Never Saddle balance law."""
from __future__ import annotations

import math

import pytest
import torch

from pruners.registry import ConfigError, build_config
from reparam import REPARAMS
from reparam.steepest import SteepestDescent


def test_q1_is_sign_descent_q2_is_gd_and_in_between():
    g = torch.tensor([0.25, -4.0, 0.0, 1.0], dtype=torch.float64)
    for q, expected in ((1.0, torch.sign(g)), (2.0, g), (1.5, torch.sign(g) * g.abs().sqrt())):
        p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0, -1.0], dtype=torch.float64))
        p0 = p.detach().clone()
        opt = SteepestDescent([p], lr=0.1, q=q)
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(p.detach(), p0 - 0.1 * expected, rtol=0, atol=1e-15)


def test_weight_decay_modes():
    g = torch.tensor([0.5, -2.0], dtype=torch.float64)
    for mode in ("decoupled", "coupled"):
        p = torch.nn.Parameter(torch.tensor([1.0, -3.0], dtype=torch.float64))
        p0 = p.detach().clone()
        opt = SteepestDescent([p], lr=0.1, q=1.0, weight_decay=0.5, wd_mode=mode)
        p.grad = g.clone()
        opt.step()
        if mode == "decoupled":
            expected = p0 - 0.1 * (torch.sign(g) + 0.5 * p0)
        else:
            expected = p0 - 0.1 * torch.sign(g + 0.5 * p0)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("q", [1.0, 1.5, 2.0])
def test_balance_law_deep_diagonal_decoupled_weight_decay(q):
    """|w_i|^q − |w_j|^q = (|w_i0|^q − |w_j0|^q) · exp(−q ∫α) for x = w1 ⊙ w2 ⊙ w3 (∫α = Σ η α)."""
    from benchmark.tasks.models import DiagonalNet
    torch.manual_seed(0)
    n, depth = 8, 3
    model = DiagonalNet(n, depth).double()
    with torch.no_grad():
        model.linear.weight.copy_(0.8 + 0.4 * torch.rand(1, n, dtype=torch.float64))
        for f in model.factors:
            f.copy_(0.8 + 0.4 * torch.rand(1, n, dtype=torch.float64))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(20, n, generator=g, dtype=torch.float64)
    y = X @ torch.randn(n, generator=g, dtype=torch.float64) * 0.3
    lr, alpha, steps = 1e-3, 0.5, 400
    opt = SteepestDescent(model.parameters(), lr=lr, q=q, weight_decay=alpha)
    ws = lambda: [model.linear.weight.detach().reshape(-1).clone()] + [f.detach().reshape(-1).clone() for f in model.factors]
    w0 = ws()
    for _ in range(steps):
        opt.zero_grad()
        ((model(X).reshape(-1) - y) ** 2).mean().backward()
        opt.step()
    w1 = ws()
    decay = math.exp(-q * lr * alpha * steps)
    moved = False
    for i in range(depth):
        for j in range(i + 1, depth):
            init = w0[i].abs() ** q - w0[j].abs() ** q
            now = w1[i].abs() ** q - w1[j].abs() ** q
            torch.testing.assert_close(now, init * decay, rtol=0, atol=2e-3 * float(init.abs().max()) + 1e-6)
            moved |= bool(((w1[i] - w0[i]).abs() > 1e-2).any())
    assert moved   # training actually moved the factors


@pytest.mark.parametrize("args", [{"q": 0.5}, {"q": 2.5}, {"wd_mode": "l2"}])
def test_bad_input(args):
    with pytest.raises(ConfigError) as exc:
        build_config(REPARAMS.get("steepest"), args, "steepest")
    assert "\n" not in str(exc.value)
