"""The enforcer's skipped post-step weight multiply gives the results of the straightforward code.

* HAM declares that it keeps zeros, so the enforcer skips its post-step weight multiply: the weights
  and optimiser state are bit-identical to a run that multiplies after every step.
* Evidence for the enforcer's owner: with a zero-keeping optimiser the post-step multiply of the
  factors m, w of θ = m ⊙ w changes no bit either (Sign-In re-splits, PILoT's final prune, a mask
  change with regrowth included), so it could be skipped for them too.
"""
from __future__ import annotations

import pytest
import torch

import reparam.factorized as fz
from pruners import Masks
from pruners.enforce import preserves_zeros
from pruners.registry import build_config
from reparam import REPARAMS
from reparam.ham import HamOptimizer

from reparam_helpers import Driver, random_masks, regression_loss, tiny_mlp


def make(name: str, **args):
    return build_config(REPARAMS.get(name), args, name)


def bits(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter, gradient and optimiser state tensor, cloned."""
    out = [p.detach().clone() for p in model.parameters()]
    out += [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    out += [v.clone() for st in opt.state.values() for v in st.values() if torch.is_tensor(v) and v.dim()]
    return out


def assert_bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.equal(x, y) and torch.equal(torch.signbit(x), torch.signbit(y))


# ------------------------------------------------------------------------------------------------
# HAM keeps zeros: the enforcer's weight pass is skipped, bit-identically
@pytest.mark.parametrize("clamp,keep_zeros,expected", [(5.0, True, True), (0.0, True, True), (5.0, False, True),
                                                       (0.0, False, False)])
def test_ham_preserves_zeros_flag(clamp, keep_zeros, expected):
    model = tiny_mlp()
    for base, base_ok in ((torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), True),
                          (torch.optim.AdamW(model.parameters(), lr=1e-3), True),
                          (torch.optim.RMSprop(model.parameters(), lr=1e-3), False)):
        opt = HamOptimizer(base, clamp=clamp, keep_zeros=keep_zeros)
        assert opt.preserves_zeros is (expected and base_ok)
        assert preserves_zeros(opt) is (expected and base_ok)   # what the enforcer asks


def _ham_run(weight_pass: bool | None, make_base, steps: int = 15, **args):
    model = tiny_mlp()
    masks = random_masks(model, 0.4)
    d = Driver(model, make("ham", **args), masks, make_base, steps_per_epoch=steps, epochs=1,
               weight_pass=weight_pass)
    loss = regression_loss()
    for _ in range(steps):
        d.step(loss)
    return model, d.opt, d.enforcer, masks


@pytest.mark.parametrize("make_base", [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2, fused=True),
    lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
])
@pytest.mark.parametrize("args", [{"alpha": 50.0, "beta": 1e-2}, {"alpha": 50.0, "beta": 1e-2, "clamp": 0.0},
                                  {"alpha": 50.0, "max_norm": 1.0}])
def test_ham_skipped_weight_pass_is_bit_identical(make_base, args):
    fast_model, fast_opt, enforcer, masks = _ham_run(None, make_base, **args)
    assert enforcer.weight_pass is False               # HAM declared it keeps zeros
    slow_model, slow_opt, slow_enf, _ = _ham_run(True, make_base, **args)
    assert slow_enf.weight_pass is True
    assert_bit_identical(bits(fast_model, fast_opt), bits(slow_model, slow_opt))
    for n, p in fast_model.named_parameters():
        if n in masks:
            assert bool((p[~masks[n]] == 0).all())


# ------------------------------------------------------------------------------------------------
# Evidence for the enforcer: its post-step multiply of the factors m, w changes no bit either
def _factor_run(weight_pass: bool, name: str, args: dict, make_base, steps: int = 16):
    model = tiny_mlp()
    masks = random_masks(model, 0.5)
    # Sign-In re-splits at each epoch start (4 steps), PILoT prunes at the last epoch's end
    d = Driver(model, make(name, **args), masks, make_base, steps_per_epoch=4, epochs=steps // 4,
               weight_pass=weight_pass)
    enforcer = d.enforcer
    loss = regression_loss()
    g = torch.Generator().manual_seed(5)
    for step in range(steps):
        if step == 6:                          # a schedule prunes some entries and grows others
            new = {n: (m & (torch.rand(m.shape, generator=g) < 0.8)) | (torch.rand(m.shape, generator=g) < 0.1)
                   for n, m in enforcer.masks.items()}
            enforcer.update(Masks(new), d.opt)
        d.step(loss)
    return model, d.opt, enforcer


@pytest.mark.parametrize("name,args", [("signin", {"reset_every": 1}), ("pilot", {"alpha": 1e-2, "final_sparsity": 0.7}),
                                       ("spred", {"alpha": 1e-2})])
@pytest.mark.parametrize("make_base", [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2, fused=True),
    lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
])
def test_factor_weight_pass_changes_no_bit_with_zero_keeping_optimisers(name, args, make_base):
    """m = w = ±0 at a pruned entry gives ∇m = ∇θ·w = ±0 and ∇w = ±0, PILoT's 2α·(m, w) = ±0, a
    zero-keeping step leaves ±0, Sign-In's re-split writes 0 where both factors are 0, RegrowSplit only
    touches kept entries, and ±0 · 0 = ±0 keeps even the sign bit: the multiply is a no-op."""
    a_model, a_opt, _ = _factor_run(True, name, args, make_base)
    b_model, b_opt, enforcer = _factor_run(False, name, args, make_base)
    assert enforcer.weight_pass is False
    assert_bit_identical(bits(a_model, a_opt), bits(b_model, b_opt))
    for n, (m, w) in fz.factor_pairs(b_model).items():
        pruned = ~enforcer.masks[n]
        assert bool((m[pruned] == 0).all()) and bool((w[pruned] == 0).all())
