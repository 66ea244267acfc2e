"""The fused factor step of θ = m ⊙ w under torch's SGD (reparam/factor_step.py, kernels.c ``factor_*``):
it trains exactly like the eager parametrisation, keeps every contract of it (gradients of m and w
visible before the step, masks, re-splits, state dicts, merge, copies) and steps aside where it does
not apply."""
from __future__ import annotations

import copy

import pytest
import torch

import reparam.factorized as fz
from pruners import Callback, MaskEnforcer, Masks, TrainState
from pruners.hooks import run_step
from pruners.registry import build_config
from reparam import REPARAMS, factor_step, native

from reparam_helpers import Driver, random_masks, regression_loss, tiny_mlp

needs_native = pytest.mark.skipif(native.library() is None, reason=f"no native kernels here ({native.status()})")

#: ATen's vectorised CPU add-with-alpha is a fused multiply-add on these; with an FMA build of the
#: kernels the fused step is then torch's eager step to the bit.
BIT_EXACT = native.factor_kernels_fma() and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def make(name: str, kernel: str = "auto", **args):
    r = build_config(REPARAMS.get(name), args, name)
    r.kernel = kernel   # an instance attribute: not part of the config
    return r


OPTIMIZERS = {
    "momentum": dict(lr=0.05, momentum=0.9),
    "nesterov+wd": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "plain": dict(lr=0.05),
    "dampening+wd": dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=1e-2),
}


class MaskChange(Callback):
    """After step ``at``, prune a few kept entries and grow a few pruned ones (as RigL / SET do), so
    the next step's ``RegrowSplit`` re-splits grown entries between the backward and the step."""

    needs_factor_gradients = False

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self, state: TrainState) -> None:
        if state.step != self.at:
            return
        new = {}
        for n, keep in state.masks.masks.items():
            k = keep.clone().reshape(-1)
            on, off = k.nonzero().reshape(-1), (~k).nonzero().reshape(-1)
            k[on[:3]] = False
            k[off[:3]] = True
            new[n] = k.reshape(keep.shape)
        state.masks.update(Masks(new), state.optimizer)


class NeedsGradients(Callback):
    """A callback that reads the factors' gradients before the step (the default declaration)."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def before_step(self, state: TrainState) -> None:
        self.seen = [p.grad.clone() for pair in fz.factor_pairs(state.model).values() for p in pair]


def train(name: str, kernel: str, dtype: torch.dtype, opt_kw: dict, steps: int = 12, loop: str = "run_step",
          extra: list | None = None, **args):
    """``steps`` steps (3 epochs of 4: Sign-In re-splits twice) on a tiny MLP, by the suite's training
    step (:func:`pruners.hooks.run_step`, which lets the fused step defer the factors' gradients) or the
    reproduction loop (:class:`benchmark.reproduce.loop.Driver`, which does not)."""
    model = tiny_mlp(dims=(40, 36, 5)).to(dtype)
    masks = random_masks(model, 0.5)
    rp = make(name, kernel, **args)
    loss = regression_loss(d_in=40, d_out=5)
    if loop == "driver":
        d = Driver(model, rp, masks, lambda ps: torch.optim.SGD(ps, **opt_kw), epochs=3, steps_per_epoch=4)
        for _ in range(steps):
            d.step(lambda m: loss(lambda x: m(x.to(dtype)).double()))
        return model, d.opt, rp, masks
    masks.apply_(model)
    rp.apply(model, masks)
    enforcer = MaskEnforcer(rp.mask_targets(model, masks), masks)
    opt = rp.wrap_optimizer(torch.optim.SGD(list(model.parameters()), **opt_kw))
    callbacks = [enforcer, *rp.callbacks(), *(extra or [])]
    state = TrainState(model=model, optimizer=opt, masks=enforcer, ctx=None, epochs=3, steps_per_epoch=4,  # type: ignore[arg-type]
                       reparam=rp)
    for cb in callbacks:
        cb.on_start(state)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 40, generator=g, dtype=torch.float64), torch.randn(16, 5, generator=g, dtype=torch.float64)
    for _ in range(steps):
        if state.step % 4 == 0:
            state.epoch = state.step // 4
            for cb in callbacks:
                cb.on_epoch_start(state)
        run_step(state, callbacks, x.to(dtype), y.to(dtype), lambda out, t: ((out - t) ** 2).mean())
    return model, opt, rp, state.masks.masks


def state_tensors(model, opt) -> list[torch.Tensor]:
    """The momentum buffers in parameter order."""
    base = getattr(opt, "base_optimizer", opt)
    bufs = [base.state[p].get("momentum_buffer") for p in model.parameters()]
    return [b for b in bufs if b is not None]


@needs_native
@pytest.mark.parametrize("name,args", [("signin", {}), ("pilot", {"alpha": 1e-2}), ("spred", {"alpha": 1e-2})])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loop", ["run_step", "driver"])
def test_fused_step_trains_like_the_eager_parametrisation(name, args, opt, dtype, loop):
    fused = train(name, "auto", dtype, OPTIMIZERS[opt], loop=loop, **args)
    eager = train(name, "eager", dtype, OPTIMIZERS[opt], loop=loop, **args)
    assert isinstance(fused[1], factor_step.FactorSGD) and type(eager[1]) is torch.optim.SGD
    assert fused[2].kernel_path() == native.status() and eager[2].kernel_path() == "eager (kernel = eager)"
    a = [p.detach() for p in fused[0].parameters()] + state_tensors(fused[0], fused[1])
    b = [p.detach() for p in eager[0].parameters()] + state_tensors(eager[0], eager[1])
    assert len(a) == len(b) and len(state_tensors(fused[0], fused[1])) == (0 if opt == "plain" else 6)
    assert_same(a, b, dtype)
    # pruned entries: both factors and θ exactly zero
    for n, (m, w) in fz.factor_pairs(fused[0]).items():
        dead = ~fused[3][n]
        assert not m[dead].any() and not w[dead].any()
        assert not fz._module_of(fused[0], n).weight[dead].any()
    # the suite's loop deferred the factors' gradients into the step; the reproduction loop did not
    deferred = loop == "run_step"
    assert all((p.grad is None) == deferred for pair in fz.factor_pairs(fused[0]).values() for p in pair)


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], dtype: torch.dtype) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if BIT_EXACT:
            assert torch.equal(x, y)
        else:
            torch.testing.assert_close(x, y, rtol=1e-5 if dtype is torch.float32 else 1e-12, atol=1e-7)


@needs_native
@pytest.mark.parametrize("name", ["signin", "pilot"])
def test_mask_changes_with_regrowth_between_backward_and_step(name):
    """A mask change (RigL-like) makes RegrowSplit re-split grown entries in ``before_step``; it passes
    the deferred gradients on first, so the step uses the forward's m: identical to the eager path."""
    args = {"alpha": 1e-2} if name == "pilot" else {}
    fused = train(name, "auto", torch.float64, OPTIMIZERS["momentum"], extra=[MaskChange(at=5)], **args)
    eager = train(name, "eager", torch.float64, OPTIMIZERS["momentum"], extra=[MaskChange(at=5)], **args)
    assert not torch.equal(fused[3]["0.weight"], random_masks(tiny_mlp(dims=(40, 36, 5)), 0.5)["0.weight"])
    assert_same([p.detach() for p in fused[0].parameters()], [p.detach() for p in eager[0].parameters()],
                torch.float64)


@needs_native
def test_a_callback_that_needs_the_factor_gradients_gets_them():
    seen = {}
    for kernel in ("auto", "eager"):
        cb = NeedsGradients()
        model, opt, *_ = train("signin", kernel, torch.float64, OPTIMIZERS["momentum"], steps=3, extra=[cb])
        seen[kernel] = (cb.seen, model)
        if kernel == "auto":
            assert not opt.deferring and len(cb.seen) == 4
    assert_same(seen["auto"][0], seen["eager"][0], torch.float64)
    assert_same([p.detach() for p in seen["auto"][1].parameters()],
                [p.detach() for p in seen["eager"][1].parameters()], torch.float64)


@needs_native
def test_zero_grad_drops_a_deferred_gradient():
    model = tiny_mlp()
    rp = make("signin")
    opt = Driver(model, rp, random_masks(model, 0.5), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)).opt
    loss = regression_loss()
    opt.before_backward([])
    loss(model).backward()
    assert all(c.pending is not None for c in opt.caches)
    assert all(p.grad is None for pair in rp.pairs.values() for p in pair)
    opt.zero_grad()
    assert all(c.pending is None for c in opt.caches)
    opt.before_backward([NeedsGradients()])
    loss(model).backward()
    assert all(c.pending is None for c in opt.caches)
    assert all(p.grad is not None for pair in rp.pairs.values() for p in pair)


@needs_native
def test_gradients_of_m_and_w_are_there_before_the_step_and_equal_autograds():
    """Callbacks between backward and step see ∇m = ∇θ ⊙ w and ∇w = ∇θ ⊙ m, as under autograd; two
    backward passes accumulate."""
    runs = {}
    for kernel in ("auto", "eager"):
        model = tiny_mlp(dims=(40, 36, 5))
        masks = random_masks(model, 0.5)
        d = Driver(model, make("signin", kernel), masks, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
        loss = regression_loss(d_in=40, d_out=5)
        loss(model).backward()
        once = [p.grad.clone() for pair in fz.factor_pairs(model).values() for p in pair]
        loss(model).backward()
        twice = [p.grad.clone() for pair in fz.factor_pairs(model).values() for p in pair]
        runs[kernel] = (once, twice, d)
    for x, y in zip(runs["auto"][0] + runs["auto"][1], runs["eager"][0] + runs["eager"][1]):
        assert torch.equal(x, y)
    for x, y in zip(runs["auto"][0], runs["auto"][1]):
        assert torch.equal(2 * x, y)
    # θ is a leaf whose gradient was handed on (nothing left on it)
    model = runs["auto"][2].model
    assert model[0].weight.is_leaf and model[0].weight.grad is None


@needs_native
def test_theta_follows_every_change_of_m_and_w():
    model = tiny_mlp()
    masks = random_masks(model, 0.5)
    r = make("signin")
    Driver(model, r, masks, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    lin = model[0]
    m, w = fz.factor_pairs(model)["0.weight"]
    assert lin.weight is lin.weight                      # the cached leaf while nothing changes
    with torch.no_grad():
        m.mul_(3.0)                                       # an in-place change (enforcer, re-split, regrowth)
    assert torch.equal(lin.weight, m * w)
    sd = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        w.add_(1.0)
    assert torch.equal(lin.weight, m * w)
    model.load_state_dict(sd)                            # a checkpoint restore
    assert torch.equal(lin.weight, m * w)
    fz.resplit(r.pairs, 1.0)                             # Sign-In's reset: θ unchanged, m² − w² = 1 off the mask
    keep = masks["0.weight"]
    assert torch.allclose(lin.weight, m * w) and torch.allclose((m * m - w * w)[keep], torch.ones(int(keep.sum())).double())


@needs_native
def test_a_copy_of_the_model_has_no_cache_and_merge_removes_it():
    model = tiny_mlp()
    r = make("signin")
    d = Driver(model, r, random_masks(model, 0.5), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    twin = copy.deepcopy(model)
    assert type(twin[0].weight.grad_fn).__name__ == "MulBackward0"     # computed as m * w, not the leaf
    assert torch.equal(twin[0].weight, model[0].weight)
    theta = model[0].weight.detach().clone()
    plists = [fz._module_of(model, n).parametrizations["weight"] for n in r.pairs]
    assert all(factor_step.cache_of(pl) is not None for pl in plists)
    r.merge(model)
    assert isinstance(model[0].weight, torch.nn.Parameter) and torch.equal(model[0].weight, theta)
    assert all(factor_step.cache_of(pl) is None for pl in plists)
    d.opt.step()                                                       # a detached wrapper is the base optimiser


def test_other_optimisers_and_the_eager_switch_keep_the_parametrisation():
    model = tiny_mlp()
    r = make("signin")
    opt = Driver(model, r, random_masks(model, 0.5), lambda ps: torch.optim.AdamW(ps, lr=1e-3)).opt
    assert type(opt) is torch.optim.AdamW
    assert r.kernel_path() == "eager (the fused factor step serves torch.optim.SGD; the optimiser is AdamW)"
    assert type(model[0].weight.grad_fn).__name__ == "MulBackward0"


@needs_native
def test_a_group_option_the_kernel_lacks_falls_back_to_the_base_step():
    runs = {}
    for kernel in ("auto", "eager"):
        model = tiny_mlp()
        r = make("signin", kernel)
        d = Driver(model, r, random_masks(model, 0.5), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                                                 maximize=True))
        loss = regression_loss()
        for _ in range(3):
            d.step(loss)
        runs[kernel] = (model, r)
    for x, y in zip(runs["auto"][0].parameters(), runs["eager"][0].parameters()):
        assert torch.equal(x, y)
    assert runs["auto"][1].kernel_path() == "eager (no factor step qualified for the fused pass)"


@needs_native
def test_native_factor_sgd_refuses_what_it_cannot_do():
    t = [torch.randn(4, 4) for _ in range(7)]

    def sgd(m, w, grads, bm, bw, theta):
        return native.factor_sgd([m], [w], [grads], [bm], [bw], [theta], [False], lr=0.1, momentum=0.9,
                                 dampening=0.0, weight_decay=0.0, l2=0.0, nesterov=False)

    assert sgd(t[0], t[1], (t[2], t[3]), t[4], t[5], t[6])
    assert sgd(t[0], t[1], (t[2],), t[4], t[5], t[6])                      # from ∇θ
    assert not sgd(t[0], t[1], (t[2], t[3]), t[4], t[4], t[6])             # aliasing buffers
    assert not sgd(t[0].t(), t[1], (t[2], t[3]), t[4], t[5], t[6])         # strided
    assert not sgd(t[0], t[1].double(), (t[2], t[3]), t[4], t[5], t[6])    # mixed dtypes
    assert not sgd(t[0], t[1], (t[2], t[3]), None, t[5], t[6])             # a missing buffer
    assert native.factor_grads(t[0].t(), t[1], t[2]) is None
    gm, gw = native.factor_grads(t[0], t[1], t[2])
    assert torch.equal(gm, t[0] * t[2]) and torch.equal(gw, t[0] * t[1])


def test_a_signin_run_records_its_compute_path(tmp_path):
    from benchmark.runner import execute
    from benchmark.spec import make_spec

    rec = execute(make_spec("digits-mlp", "random", 0.8, seed=0, reparam="signin", recipe={"epochs": 1}), tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    path = rec["versions"]["native_kernels"]
    assert path == native.status() or path.startswith("eager")
