"""The issue-10 fast paths of the reparams give the results of the straightforward code.

* θ = m ⊙ w: the fast ``weight`` getter installed over ``torch.nn.utils.parametrize``'s property gives
  bit-identical weights, gradients and optimiser state after training steps, and falls back to
  parametrize's own getter wherever that one does more (caching, hooks, stacked parametrisations).
* HAM declares that it keeps zeros, so the enforcer skips its post-step weight multiply: the weights
  and optimiser state are bit-identical to a run that multiplies after every step.
* Evidence for the enforcer's owner: with a zero-keeping optimiser the post-step multiply of the
  factors m, w of θ = m ⊙ w changes no bit either (Sign-In re-splits, PILoT's final prune, a mask
  change with regrowth included), so it could be skipped for them too.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

import reparam.factorized as fz
from pruners import Masks
from pruners.enforce import preserves_zeros
from pruners.registry import build_config
from reparam import REPARAMS
from reparam.ham import HamOptimizer

from benchmark.reproduce import loop
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
# θ = m ⊙ w: the fast weight getter
def _factorised_run(name: str, fast: bool, monkeypatch, dtype=torch.float64, steps: int = 12, **args):
    if not fast:
        monkeypatch.setattr(fz, "_install_fast_weight", lambda module, tensor_name="weight": None)
    model = tiny_mlp().to(dtype)
    masks = random_masks(model, 0.5)
    d = Driver(model, make(name, **args), masks,
               lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
               epochs=3, steps_per_epoch=4)
    loss = regression_loss()

    def cast_loss(m):
        return loss(lambda x: m(x.to(dtype)).double())

    for _ in range(steps):
        d.step(cast_loss)
    monkeypatch.undo()
    return model, d.opt


@pytest.mark.parametrize("name,args", [("signin", {}), ("pilot", {"alpha": 1e-3}), ("spred", {"alpha": 1e-3})])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_weight_training_is_bit_identical_to_parametrize(name, args, dtype, monkeypatch):
    fast_model, fast_opt = _factorised_run(name, True, monkeypatch, dtype, **args)
    slow_model, slow_opt = _factorised_run(name, False, monkeypatch, dtype, **args)
    assert_bit_identical(bits(fast_model, fast_opt), bits(slow_model, slow_opt))
    # the slow twin really ran parametrize's getter, the fast one ours
    lin_fast, lin_slow = fast_model[0], slow_model[0]
    assert type(lin_fast).__dict__["weight"].fget.__name__ == "get_fast"
    assert type(lin_slow).__dict__["weight"].fget.__name__ == "get_parametrized"


def test_fast_weight_is_the_product_with_mul_backward():
    model = tiny_mlp()
    r = make("signin")
    r.apply(model, random_masks(model, 0.5))
    for name, (m, w) in fz.factor_pairs(model).items():
        mod = fz._module_of(model, name)
        theta = mod.weight
        assert not isinstance(theta, torch.nn.Parameter)
        assert torch.equal(theta, m * w)
        assert type(theta.grad_fn).__name__ == "MulBackward0"
        assert theta is not mod.weight                 # computed afresh at every access


def test_fast_weight_of_a_deep_copy_reads_the_copy():
    import copy

    model = tiny_mlp()
    make("signin").apply(model, random_masks(model, 0.5))
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[0].parametrizations.weight.original0.mul_(2)
    assert torch.equal(twin[0].weight, 2 * model[0].weight)


def test_fast_weight_falls_back_to_parametrize_where_it_does_more():
    model = tiny_mlp()
    r = make("signin")
    r.apply(model, random_masks(model, 0.5))
    lin = model[0]
    plist = lin.parametrizations.weight
    # parametrize's cache: one tensor per access inside parametrize.cached()
    with parametrize.cached():
        assert lin.weight is lin.weight
    # a forward hook on the parametrisation modules runs (the getter goes through Module.__call__)
    seen = []
    h = plist[0].register_forward_hook(lambda mod, inp, out: seen.append(out))
    w = lin.weight
    h.remove()
    assert len(seen) == 1 and torch.equal(seen[0], w)
    # a stacked parametrisation is applied on top of θ
    parametrize.register_parametrization(lin, "weight", _Double())
    m, w_ = plist.original0, plist.original1
    assert torch.equal(lin.weight, 2 * (m * w_))
    parametrize.remove_parametrizations(lin, "weight", leave_parametrized=True)
    assert isinstance(lin.weight, torch.nn.Parameter)
    assert "weight" not in type(lin).__dict__          # the original class is back


class _Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


def test_fast_weight_keeps_state_dict_assignment_and_merge(monkeypatch):
    model = tiny_mlp()
    r = make("signin")
    masks = random_masks(model, 0.5)
    masks.apply_(model)
    r.apply(model, masks)
    keys = list(model.state_dict())
    assert any(k.endswith("parametrizations.weight.original0") for k in keys)
    # a checkpoint round trip through a model without the fast getter and back
    monkeypatch.setattr(fz, "_install_fast_weight", lambda module, tensor_name="weight": None)
    twin = tiny_mlp(seed=3)
    make("signin").apply(twin, masks)
    monkeypatch.undo()
    assert list(twin.state_dict()) == keys
    twin.load_state_dict(model.state_dict())
    for (n, (m, w)), (_, (m2, w2)) in zip(fz.factor_pairs(model).items(), fz.factor_pairs(twin).items()):
        assert torch.equal(m, m2) and torch.equal(w, w2)
        assert torch.equal(fz._module_of(model, n).weight, fz._module_of(twin, n).weight)
    # assigning θ goes through right_inverse (the split) as with parametrize's property
    lin = model[0]
    theta = torch.randn_like(lin.weight)
    with torch.no_grad():
        lin.weight = theta
    torch.testing.assert_close(lin.weight.detach(), theta, rtol=0, atol=1e-15)
    before = {n: t.clone() for n, t in r.effective_weights(model).items()}
    r.merge(model)
    for n, p in ((n, p) for n, p in model.named_parameters() if n.endswith("weight")):
        assert torch.equal(p.detach(), before[n])


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
    d = loop.Driver(model, make("ham", **args), make_base, steps_per_epoch=steps, epochs=1, masks=masks,
                    weight_pass=weight_pass)
    loss = regression_loss()
    for _ in range(steps):
        d.step(loss)
    return model, d.optimizer, d.enforcer, masks


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
    d = loop.Driver(model, make(name, **args), make_base, steps_per_epoch=4, epochs=steps // 4, masks=masks,
                    weight_pass=weight_pass)
    enforcer = d.enforcer
    loss = regression_loss()
    g = torch.Generator().manual_seed(5)
    for step in range(steps):
        if step == 6:                          # a schedule prunes some entries and grows others
            new = {n: (m & (torch.rand(m.shape, generator=g) < 0.8)) | (torch.rand(m.shape, generator=g) < 0.1)
                   for n, m in enforcer.masks.items()}
            enforcer.update(Masks(new), d.optimizer)
        d.step(loss)
    return model, d.optimizer, enforcer


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


def test_without_the_private_torch_state_the_fast_getter_is_not_installed(monkeypatch):
    """A torch release that lacks the private state the fast getter reads keeps parametrize's getter."""
    def getter_names(model):
        return {type(m).__dict__["weight"].fget.__name__ for m in model.modules()
                if torch.nn.utils.parametrize.is_parametrized(m, "weight")}

    model = tiny_mlp().double()
    make("signin").apply(model, random_masks(model, 0.5))
    assert getter_names(model) == {"get_fast"}
    monkeypatch.setattr(fz, "_FAST_GETTER_OK", False)
    model = tiny_mlp().double()
    make("signin").apply(model, random_masks(model, 0.5))
    names = getter_names(model)
    assert names and "get_fast" not in names
