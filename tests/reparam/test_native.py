"""The native fused kernels (reparam/native.py, reparam/csrc/kernels.c): their exp against float64, HAM's
fused pass against the formula and against the eager path, the fallbacks, and the build cache."""
from __future__ import annotations

import math
import tempfile

import pytest
import torch

from reparam import native
from reparam.ham import HamOptimizer

needs_native = pytest.mark.skipif(native.library() is None, reason=f"no native kernels here ({native.status()})")


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """A clean native state building into a private cache; the process state is restored afterwards."""
    saved = dict(native._state)
    monkeypatch.setenv(native.ENV_CACHE, str(tmp_path / "cache"))
    native._reset_for_tests()
    yield tmp_path / "cache"
    native._reset_for_tests()
    native._state.update(saved)


def closed_form(theta, g, lr, alpha, beta, clamp):
    """HAM's mirror step (PAPERS.md §4) in float64: θ ⊙ exp(clamp(−η(α sign θ ⊙ g + β)))."""
    e = (-lr * (alpha * torch.sign(theta.double()) * g.double() + beta)).clamp(-clamp, clamp)
    return theta.double() * torch.exp(e)


@needs_native
def test_exp_within_one_ulp_of_float64_and_nan_propagates():
    x = torch.cat([torch.linspace(-87.0, 87.0, 200_003), torch.tensor([0.0, -0.0, 1e-8, -1e-8, 0.0625, -5.0, 5.0])])
    out = native.exp_f32(x)
    ref = torch.exp(x.double())
    ulp = (out.double() - ref).abs() / (ref * 2.0 ** -23)    # in units of float32's ulp at the value
    assert float(ulp.max()) < 1.0
    assert float(native.exp_f32(torch.tensor([0.0]))[0]) == 1.0
    nan = native.exp_f32(torch.tensor([float("nan")] * 17))
    assert bool(torch.isnan(nan).all())


@needs_native
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 3e-7), (torch.float64, 1e-14)])
@pytest.mark.parametrize("grad_scale", [1e-5, 0.05])   # exponents within 1/16 (short exp) and beyond (full exp)
def test_ham_step_matches_the_formula_and_returns_the_new_sums_of_squares(dtype, rtol, grad_scale):
    g0 = torch.Generator().manual_seed(0)
    shapes = [(300, 784), (7, 13), (1, 1), (33, 1025)]          # vector blocks, scalar tails, a single entry
    params = [(torch.randn(s, generator=g0) * 0.1).to(dtype) for s in shapes]
    params[0][:, :5] = 0.0                                       # pruned entries
    grads = [(torch.randn(s, generator=g0) * grad_scale).to(dtype) for s in shapes]
    grads[3].view(-1)[:2048] = torch.randn(2048, generator=g0).to(dtype) * 0.05   # two blocks of large exponents
    grads[1][0, 0] = 1e4                                         # drives the exponent into the clamp
    lr, alpha, beta, clamp = 0.1, 200.0, 1e-3, 5.0
    before = [p.clone() for p in params]
    sumsq = native.ham_step(params, grads, lr, alpha, beta, clamp)
    assert sumsq is not None and len(sumsq) == len(params)
    for p, b, g, sq in zip(params, before, grads, sumsq):
        expected = closed_form(b, g, lr, alpha, beta, clamp)
        torch.testing.assert_close(p.double(), expected, rtol=rtol, atol=0.0)
        assert sq == pytest.approx(float((p.double() ** 2).sum()), rel=1e-6)
    assert bool((params[0][:, :5] == 0).all())                  # zeros stay exactly zero
    assert float(params[1][0, 0]) == pytest.approx(float(before[1][0, 0]) * math.exp(-5.0 * float(torch.sign(before[1][0, 0]))), rel=1e-6)


@needs_native
def test_fused_and_eager_paths_agree_over_training_and_keep_masks():
    torch.manual_seed(0)
    x, y = torch.randn(64, 20), torch.randint(0, 5, (64,))
    runs = {}
    for kernel in ("auto", "eager"):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(20, 300), torch.nn.ReLU(), torch.nn.Linear(300, 5))
        with torch.no_grad():
            model[0].weight[:, ::3] = 0.0                         # a "mask": these must stay 0 without help
        opt = HamOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), alpha=20.0, beta=1e-3,
                           kernel=kernel)
        for _ in range(15):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            model[0].weight.grad[:, ::3] = 0.0                    # the enforcer's gradient mask
            opt.step()
        runs[kernel] = [p.detach().clone() for p in model.parameters()]
        assert bool((model[0].weight[:, ::3] == 0).all())
    for a, b in zip(runs["auto"], runs["eager"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@needs_native
def test_max_norm_rescale_on_the_fused_path():
    w = torch.nn.Parameter(torch.full((4, 4), 400.0))               # norm 1600 > 1000
    w.grad = torch.zeros(4, 4)
    opt = HamOptimizer(torch.optim.SGD([w], lr=1.0), alpha=1.0, beta=0.0, max_norm=1000.0)
    opt.step()
    assert float(w.detach().norm()) == pytest.approx(1000.0, rel=1e-6)


@needs_native
def test_nan_gradient_gives_nan_on_both_paths():
    outs = []
    for kernel in ("auto", "eager"):
        w = torch.nn.Parameter(torch.tensor([[1.0, 0.0, -2.0]]))
        w.grad = torch.tensor([[float("nan"), float("nan"), 1.0]])
        HamOptimizer(torch.optim.SGD([w], lr=0.0), alpha=1.0, beta=0.0, max_norm=0.0, kernel=kernel).step()
        outs.append(w.detach().clone())
    assert torch.equal(torch.isnan(outs[0]), torch.isnan(outs[1]))
    assert bool(torch.isnan(outs[0][0, :2]).all()) and float(outs[0][0, 2]) == float(outs[1][0, 2])


@needs_native
def test_version_counter_is_bumped():
    p, g = torch.randn(8, 8), torch.randn(8, 8)
    v = p._version
    assert native.ham_step([p], [g], 0.1, 1.0, 0.0, 5.0) is not None
    assert p._version > v


@needs_native
@pytest.mark.parametrize("case", ["non-contiguous", "mixed dtype", "no clamp", "huge clamp", "aliased"])
def test_tensors_that_do_not_qualify_are_left_to_eager(case):
    p, g = torch.randn(8, 8), torch.randn(8, 8)
    clamp = 5.0
    if case == "non-contiguous":
        p = torch.randn(8, 8).t()
    elif case == "mixed dtype":
        g = g.double()
    elif case == "no clamp":
        clamp = 0.0
    elif case == "huge clamp":
        clamp = 100.0
    elif case == "aliased":
        g = p
    before = p.clone()
    assert native.ham_step([p], [g], 0.1, 1.0, 0.0, clamp) is None
    assert torch.equal(p, before)


def test_disabled_by_environment_falls_back_to_eager(fresh_native, monkeypatch):
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.library() is None
    assert native.status() == f"eager: disabled by ${native.ENV_SWITCH}"
    p = torch.nn.Parameter(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
    p.grad = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    HamOptimizer(torch.optim.SGD([p], lr=0.1), alpha=2.0, beta=0.1).step()   # the eager path
    half = torch.tensor([[0.95, -1.05]], dtype=torch.float64)
    torch.testing.assert_close(p.detach(), closed_form(half, torch.tensor([[0.5, 0.5]]), 0.1, 2.0, 0.1, 5.0))


def test_a_broken_compiler_falls_back_with_the_reason(fresh_native, monkeypatch, tmp_path):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'cc: error: no such compiler' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv(native.ENV_SWITCH, "1")                    # even where the suite runs with it off
    assert native.library() is None
    assert native.status().startswith("eager: the C compiler failed")
    assert "no such compiler" in native.status()
    assert not any(fresh_native.glob("*"))                        # nothing half-written in the cache


@needs_native
def test_an_unwritable_cache_falls_back_to_the_temporary_directory_then_to_eager(fresh_native, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(native.ENV_CACHE, str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert native.library() is not None                           # built under the temporary directory
    assert any((tmp_path / "tmp" / "sparsebench-kernels").glob("kernels-*.so"))
    native._reset_for_tests()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(blocker))
    assert native.library() is None                               # nowhere to write: eager, with the reason
    assert native.status().startswith("eager: cannot build the kernels:")


@needs_native
def test_build_is_cached_and_leaves_no_temporary_files(fresh_native):
    assert native.library() is not None
    built = sorted(fresh_native.glob("*"))
    assert len(built) == 1 and built[0].name.startswith("kernels-") and built[0].suffix == ".so"
    mtime = built[0].stat().st_mtime_ns
    native._reset_for_tests()
    assert native.library() is not None                           # loaded from the cache, not rebuilt
    assert built[0].stat().st_mtime_ns == mtime
    assert native.status() == f"native ({built[0].name})"


@pytest.mark.parametrize("switch", ["1", "0"])
def test_a_ham_run_records_which_path_it_took_and_keeps_its_run_id(tmp_path, monkeypatch, switch):
    from benchmark.runner import execute
    from benchmark.spec import make_spec

    saved = dict(native._state)
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    native._reset_for_tests()
    try:
        spec = make_spec("digits-mlp", "random", 0.8, seed=0, reparam="ham", reparam_args={"alpha": 20.0},
                         recipe={"epochs": 1})
        assert "kernel" not in spec.reparam_args   # the compute path is not part of the run's identity
        rec = execute(spec, tmp_path)
        status = native.status()
    finally:
        native._reset_for_tests()
        native._state.update(saved)
    assert rec["status"] == "ok", rec["reason"]
    path = rec["versions"]["native_kernels"]
    if switch == "0":
        assert path == f"eager: disabled by ${native.ENV_SWITCH}"
    else:
        assert path == status and (path.startswith("native (") or path.startswith("eager: "))
    plain = execute(make_spec("digits-mlp", "random", 0.8, seed=0, recipe={"epochs": 1}), tmp_path)
    assert "native_kernels" not in plain["versions"]     # no kernel choice, nothing recorded


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel 'cuda' is unknown"):
        HamOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2, 2))], lr=0.1), kernel="cuda")


@needs_native
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_gradient_inside_a_block_matches_the_eager_path(bad):
    """A block of small gradients takes the short exp; one NaN / inf gradient in it must give what the
    eager path gives there (NaN, or the clamped step for inf) and leave the other entries as usual."""
    g0 = torch.Generator().manual_seed(3)
    theta = torch.randn(64, 64, generator=g0) * 0.1
    theta[0, :8] = 0.0
    grad = torch.randn(64, 64, generator=g0) * 1e-6
    grad[5, 7] = bad
    grad[0, 3] = bad                                           # at a zero weight
    outs = {}
    for kernel in ("auto", "eager"):
        w = torch.nn.Parameter(theta.clone())
        w.grad = grad.clone()
        HamOptimizer(torch.optim.SGD([w], lr=0.1), alpha=20.0, beta=1e-3, max_norm=0.0, kernel=kernel).step()
        outs[kernel] = w.detach()
    torch.testing.assert_close(outs["auto"], outs["eager"], rtol=3e-7, atol=0.0, equal_nan=True)
