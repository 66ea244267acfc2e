"""Weight-decay schedules (PAPERS.md §7): switch-off points, callables, and the logged dose Σ η·wd."""
from __future__ import annotations

import pytest
import torch

from pruners import Masks
from pruners.registry import ConfigError, build_config
from reparam import REPARAMS
from reparam.wd_schedule import WdSchedule

from reparam_helpers import Driver, regression_loss, tiny_mlp


def run(reparam, epochs=4, steps=5, lr=0.1, wd=0.01):
    model = tiny_mlp()
    d = Driver(model, reparam, Masks.ones(model), lambda ps: torch.optim.SGD(ps, lr=lr, weight_decay=wd),
               epochs=epochs, steps_per_epoch=steps)
    log = []
    for _ in range(epochs * steps):
        d.step(regression_loss())
        log.append(d.opt.param_groups[0]["weight_decay"])
    return d, log


def test_switch_off_fraction_and_dose():
    r = build_config(REPARAMS.get("wd_schedule"), {"schedule": "switch_off", "t_off": 0.25}, "wd")
    d, log = run(r)
    assert log == [0.01] * 5 + [0.0] * 15          # progress < 0.25 during the first 5 of 20 steps
    assert d.state.metrics["wd_dose"] == pytest.approx(5 * 0.1 * 0.01)
    assert d.state.metrics["weight_decay"] == 0.0


def test_switch_off_epoch_and_constant():
    r = build_config(REPARAMS.get("wd_schedule"), {"t_off": 2, "unit": "epoch"}, "wd")
    _, log = run(r)
    assert log == [0.01] * 10 + [0.0] * 10
    r = build_config(REPARAMS.get("wd_schedule"), {"schedule": "constant"}, "wd")
    d, log = run(r)
    assert log == [0.01] * 20 and d.state.metrics["wd_dose"] == pytest.approx(20 * 0.1 * 0.01)


def test_callable_schedule():
    r = WdSchedule.from_callable(lambda t: 1.0 - t)
    d, log = run(r, epochs=1, steps=4)
    assert log == pytest.approx([0.01, 0.0075, 0.005, 0.0025])
    assert d.state.metrics["wd_dose"] == pytest.approx(0.1 * 0.025)


def test_equal_dose_equal_gamma_shrink_for_factorised_weights():
    """m² − w² = γ₀ exp(−2 · wd_dose) for SGD weight decay on both factors (PAPERS.md §7 check)."""
    from reparam.factorized import factor_pairs
    from reparam.signin import SignIn
    for lr, wd, steps in ((1e-3, 0.4, 200), (1e-3, 0.8, 100)):     # equal dose 0.08
        model = tiny_mlp()
        r = SignIn(reset_every=1000)
        d = Driver(model, r, Masks.ones(model), lambda ps: torch.optim.SGD(ps, lr=lr, weight_decay=wd),
                   epochs=1, steps_per_epoch=10_000)
        for _ in range(steps):
            d.step(lambda m: 0.0 * sum(p.sum() for p in m.parameters()))
        for m, w in factor_pairs(model).values():
            got = (m * m - w * w).detach()
            # discrete GD: factor (1 − η wd)² per step
            torch.testing.assert_close(got, torch.full_like(got, (1 - lr * wd) ** (2 * steps)), rtol=1e-12, atol=0)
            torch.testing.assert_close(got, torch.full_like(got, torch.exp(torch.tensor(-2 * 0.08)).item()),
                                       rtol=1e-3, atol=0)


def test_bad_input():
    from benchmark.spec import make_spec
    for args in ({"schedule": "cosine"}, {"t_off": 1.5}, {"t_off": -1.0}, {"unit": "step"}):
        with pytest.raises(ConfigError):
            build_config(REPARAMS.get("wd_schedule"), args, "wd")
    with pytest.raises(ConfigError, match="after the end of training"):
        make_spec(task="digits-mlp", reparam="wd_schedule", reparam_args={"t_off": 20, "unit": "epoch"},
                  recipe={"epochs": 5})
