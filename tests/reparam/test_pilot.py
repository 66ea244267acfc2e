"""PILoT and spred (PAPERS.md §1, §3): the γ law, the α schedules, the adaptive rule, the final prune."""
from __future__ import annotations

import math

import pytest
import torch

from pruners import Masks
from pruners.registry import ConfigError, build_config
from reparam import REPARAMS
from reparam.factorized import factor_pairs
from reparam.pilot import L2Schedule, alpha_at, global_magnitude_masks

from reparam_helpers import Driver, random_masks, regression_loss, tiny_mlp


def make(name: str, **args):
    return build_config(REPARAMS.get(name), args, name)


def test_gamma_follows_exp_minus_4_integral_alpha_under_small_lr_gd():
    model = tiny_mlp()
    masks = random_masks(model, 0.7)
    r = make("pilot", alpha=0.5, schedule="harmonic")
    lr, steps = 1e-3, 300
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=lr), epochs=3, steps_per_epoch=100)
    pairs = factor_pairs(model)
    gamma0 = {n: (m * m - w * w).detach().clone() for n, (m, w) in pairs.items()}
    loss = regression_loss()
    for _ in range(steps):
        d.step(loss)
    dose = lr * 100 * (0.5 + 0.5 / 2 + 0.5 / 3)        # Σ η α_k, harmonic α/k per epoch
    cb = next(c for c in d.callbacks if isinstance(c, L2Schedule))
    assert cb.dose == pytest.approx(dose, rel=1e-12)
    factor = math.exp(-4 * dose)
    for n, (m, w) in pairs.items():
        kept = masks[n]
        got = (m * m - w * w).detach()[kept]
        torch.testing.assert_close(got, gamma0[n][kept] * factor, rtol=2e-3, atol=0)
        assert bool((got < gamma0[n][kept] * 0.99).all())     # it did shrink (not a vacuous check)


def test_gamma_is_conserved_without_alpha_and_spred_stays_at_zero():
    for name, g0 in (("pilot", 1.0), ("spred", 0.0)):
        model = tiny_mlp()
        masks = random_masks(model, 0.7)
        r = make(name, alpha=0.0)
        d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=1e-3), epochs=1, steps_per_epoch=100)
        for _ in range(100):
            d.step(regression_loss())
        for n, (m, w) in factor_pairs(model).items():
            got = (m * m - w * w).detach()[masks[n]]
            torch.testing.assert_close(got, torch.full_like(got, g0), rtol=0, atol=1e-4)


def test_spred_initial_split():
    model = tiny_mlp()
    theta = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    masks = Masks({n: torch.ones_like(t, dtype=torch.bool) for n, t in theta.items()})
    r = make("spred")
    r.apply(model, masks)
    for n, (m, w) in factor_pairs(model).items():
        torch.testing.assert_close(m.detach(), theta[n].abs().sqrt(), rtol=0, atol=1e-15)
        torch.testing.assert_close(w.detach(), theta[n].sign() * theta[n].abs().sqrt(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("schedule,expected", [
    ("constant", [0.2, 0.2, 0.2, 0.2]),
    ("harmonic", [0.2, 0.1, 0.2 / 3, 0.05]),
    ("quadratic", [0.2, 0.05, 0.2 / 9, 0.2 / 16]),
    ("geometric", [0.2, 0.2 * 0.9, 0.2 * 0.81, 0.2 * 0.729]),
])
def test_alpha_schedules(schedule, expected):
    got = [alpha_at(schedule, 0.2, k, decay=0.9) for k in range(1, 5)]
    assert got == pytest.approx(expected, rel=1e-12)
    # and what the callback applies per epoch (epoch index 0-based → k = epoch + 1)
    r = make("pilot", alpha=0.2, schedule=schedule, decay=0.9)
    cb = L2Schedule(r)
    assert [cb.current_alpha(e) for e in range(4)] == pytest.approx(expected, rel=1e-12)


def test_adaptive_rule_raises_alpha_until_l1_criterion_met():
    model = tiny_mlp()
    masks = random_masks(model, 1.0)
    r = make("pilot", alpha=0.01, schedule="adaptive", growth=3.0, alpha_max=0.2, l1_target=0.5)
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.05), epochs=60, steps_per_epoch=5)
    cb = next(c for c in d.callbacks if isinstance(c, L2Schedule))
    zero = lambda model: 0.0 * sum(p.sum() for p in model.parameters())   # only the penalty acts
    alphas, l1s = [], []
    for epoch in range(60):
        alphas.append(cb.alpha)
        for _ in range(5):
            d.step(zero)
        l1s.append(cb.l1_norm())
    k0 = cb.l1_start * 0.5
    met = next(i for i, v in enumerate(l1s) if v < k0)
    # before the criterion is met α grows by the factor each epoch (capped); afterwards it stays
    for i in range(met):
        assert alphas[i + 1] == pytest.approx(min(alphas[i] * 3.0, 0.2))
    assert alphas[met + 1:] == [alphas[met + 1]] * len(alphas[met + 1:])
    assert alphas[1] == pytest.approx(0.03)


def test_global_magnitude_masks_exact_count_and_subset():
    w = {"a": torch.tensor([[0.1, -0.5], [0.3, 0.0]]), "b": torch.tensor([2.0, -0.05, 0.2, 0.4])}
    cur = Masks({"a": torch.tensor([[True, True], [True, False]]), "b": torch.tensor([True, True, False, True])})
    new = global_magnitude_masks(w, cur, 0.5)    # keep 4 of 8: 2.0, -0.5, 0.4, 0.3 (0.2 is pruned already)
    assert new["a"].tolist() == [[False, True], [True, False]]
    assert new["b"].tolist() == [True, False, False, True]


def test_final_sparsity_prunes_both_factors_at_the_last_epoch():
    model = tiny_mlp()
    masks = random_masks(model, 1.0)
    r = make("pilot", alpha=1e-3, final_sparsity=0.8)
    d = Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9), epochs=2, steps_per_epoch=3)
    for _ in range(6):
        d.step(regression_loss())
    final = d.enforcer.masks
    assert final.sparsity() == pytest.approx(0.8, abs=1 / final.total())
    assert d.state.metrics["pilot_final_sparsity"] == pytest.approx(final.sparsity())
    for n, (m, w) in factor_pairs(model).items():
        assert bool((m[~final[n]] == 0).all()) and bool((w[~final[n]] == 0).all())
        for p in (m, w):
            assert bool((d.opt.state[p]["momentum_buffer"][~final[n]] == 0).all())
    r.merge(model)
    assert Masks.from_model_nonzero(model).sparsity() >= 0.8 - 1e-9


@pytest.mark.parametrize("args", [{"alpha": -1e-3}, {"alpha": float("nan")}, {"schedule": "cosine"},
                                  {"decay": 1.5}, {"final_sparsity": 1.0}, {"growth": 0.5},
                                  {"l1_target": 0.0}, {"gamma": 0.0}])
def test_pilot_bad_input(args):
    with pytest.raises(ConfigError) as exc:
        make("pilot", **args)
    assert "\n" not in str(exc.value)
