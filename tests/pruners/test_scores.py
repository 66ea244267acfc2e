"""PaI scores against hand computations: SNIP, GraSP, SynFlow (float64, tiny networks)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pruners import ALLOCATIONS, PRUNERS, ConfigError, PruneContext
from pruners.masks import prunable_parameters
from pruners.registry import build_config

DT = torch.float64


def make_ctx(x: torch.Tensor | None, y: torch.Tensor | None, *, batch: int = 4, classes: int = 3,
             input_shape=(4,), seed: int = 0) -> PruneContext:
    def batches(n: int):
        xs, ys = x[:n], y[:n]
        return [(xs[i:i + batch], ys[i:i + batch]) for i in range(0, len(ys), batch)]

    return PruneContext(seed=seed, batches=None if x is None else batches,
                        loss_fn=nn.functional.cross_entropy, device=torch.device("cpu"),
                        num_classes=classes, input_shape=tuple(input_shape), prune_batch_size=batch)


def two_layer(bias: bool = True) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 5, bias=bias), nn.ReLU(), nn.Linear(5, 3, bias=bias)).to(DT)


def data(n: int = 10):
    g = torch.Generator().manual_seed(11)
    return torch.randn(n, 4, generator=g, dtype=DT), torch.randint(0, 3, (n,), generator=g)


def snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()})


def assert_untouched(model: nn.Module, snap) -> None:
    state, req, modes = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert {n: p.requires_grad for n, p in model.named_parameters()} == req
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(p.grad is None for p in model.parameters())


# -------------------------------------------------------------------------------------------------
# SNIP

def test_snip_equals_hand_computation():
    model = two_layer()
    x, y = data(9)  # 9 samples = 3 per class × 3 classes; batches of 4, 4, 1 (unequal)
    ctx = make_ctx(x, y)
    pruner = build_config(PRUNERS.get("snip"), {"samples_per_class": 3}, "snip")
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    # hand computation: mean cross-entropy over the 9 samples, gradients written out
    h_pre = x @ w1.T + b1
    h = h_pre.clamp(min=0)
    logits = h @ w2.T + b2
    p = torch.softmax(logits, 1)
    d_logits = (p - nn.functional.one_hot(y, 3).to(DT)) / len(y)
    g2 = d_logits.T @ h
    d_h = (d_logits @ w2) * (h_pre > 0).to(DT)
    g1 = d_h.T @ x
    raw1, raw2 = (w1 * g1).abs(), (w2 * g2).abs()
    total = raw1.sum() + raw2.sum()
    snap = snapshot(model)
    s = pruner.scores(model, ctx)
    assert_untouched(model, snap)
    torch.testing.assert_close(s["0.weight"], raw1 / total)
    torch.testing.assert_close(s["2.weight"], raw2 / total)
    assert float(sum(v.sum() for v in s.values())) == pytest.approx(1.0)


def test_snip_restores_batchnorm_buffers_in_train_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).to(DT)
    x, y = data(12)
    snap = snapshot(model)
    pruner = build_config(PRUNERS.get("snip"), {"samples_per_class": 4, "train_mode": True}, "snip")
    pruner.scores(model, make_ctx(x, y))
    assert_untouched(model, snap)  # running statistics and num_batches_tracked were restored


# -------------------------------------------------------------------------------------------------
# GraSP

def test_grasp_hg_matches_double_backward_and_finite_differences():
    model = two_layer()
    x, y = data(9)
    ctx = make_ctx(x, y)
    pruner = build_config(PRUNERS.get("grasp"), {"samples_per_class": 3, "temperature": 2.0}, "grasp")
    snap = snapshot(model)
    hg = pruner.hessian_gradient(model, ctx)
    assert_untouched(model, snap)

    names = list(prunable_parameters(model))
    ref = copy.deepcopy(model)
    params = dict(ref.named_parameters())

    def loss_of(weights: list[torch.Tensor]) -> torch.Tensor:
        state = {n: p.detach() for n, p in params.items()}
        state.update(dict(zip(names, weights)))
        out = torch.func.functional_call(ref, state, (x,)) / 2.0
        return nn.functional.cross_entropy(out, y)

    w = [params[n].detach().clone() for n in names]
    # independent double backward: torch.autograd.functional.hvp on the full-sample loss
    leaves = [t.clone().requires_grad_(True) for t in w]
    g = torch.autograd.grad(loss_of(leaves), leaves)
    _, hvp = torch.autograd.functional.hvp(lambda *ws: loss_of(list(ws)), tuple(w), tuple(gi.detach() for gi in g))
    for n, h in zip(names, hvp):
        torch.testing.assert_close(hg[n], h)
    # central finite differences of the gradient along g
    eps = 1e-5

    def grad_at(ws):
        ws = [t.clone().requires_grad_(True) for t in ws]
        return torch.autograd.grad(loss_of(ws), ws)

    plus = grad_at([t + eps * gi for t, gi in zip(w, g)])
    minus = grad_at([t - eps * gi for t, gi in zip(w, g)])
    for n, a, b in zip(names, plus, minus):
        torch.testing.assert_close(hg[n], (a - b) / (2 * eps), rtol=1e-5, atol=1e-9)
    # the score is (H g) ⊙ θ normalised by |Σ (H g) ⊙ θ|
    s = pruner.scores(model, ctx)
    raw = {n: hg[n] * params[n].detach() for n in names}
    norm = abs(float(sum(r.sum() for r in raw.values())))
    for n in names:
        torch.testing.assert_close(s[n], raw[n] / norm)


def test_grasp_keeps_highest_hg_theta():
    """Paper: remove the highest −θ⊙Hg, i.e. keep the highest (Hg)⊙θ."""
    model = two_layer()
    x, y = data(9)
    ctx = make_ctx(x, y)
    pruner = build_config(PRUNERS.get("grasp"), {"samples_per_class": 3}, "grasp")
    s = pruner.scores(model, ctx)
    masks = pruner.initial_masks(model, ctx, 0.5, ALLOCATIONS.get("global")())
    flat_s = torch.cat([s[n].reshape(-1) for n in s])
    flat_m = torch.cat([masks[n].reshape(-1) for n in s])
    assert flat_s[flat_m].min() >= flat_s[~flat_m].max()


# -------------------------------------------------------------------------------------------------
# SynFlow

def test_synflow_closed_form_on_linear_chain():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 5, bias=False),
                          nn.Linear(5, 2, bias=False)).to(DT)
    w1, w2, w3 = (m.weight.detach().abs() for m in model)
    pruner = build_config(PRUNERS.get("synflow"), {"double": True}, "synflow")
    snap = snapshot(model)
    s = pruner.scores(model, make_ctx(None, None, input_shape=(3,)))
    assert_untouched(model, snap)
    ones_in, ones_out = torch.ones(3, dtype=DT), torch.ones(2, dtype=DT)
    # paths through W2[i, j]: (sum of |W3| path weights from unit i to the outputs) × (paths into j)
    into = w1 @ ones_in          # flow arriving at each unit of layer 1
    out_of = ones_out @ w3       # flow leaving each unit of layer 2 towards the outputs
    expected = {"0.weight": w1 * (ones_out @ w3 @ w2)[:, None] * ones_in[None, :],
                "1.weight": w2 * out_of[:, None] * into[None, :],
                "2.weight": w3 * ones_out[:, None] * (w2 @ into)[None, :]}
    top = max(float(e.max()) for e in expected.values())  # double=True rescales by the maximum
    for n, e in expected.items():
        torch.testing.assert_close(s[n], e / top)
    # and R is conserved layer by layer: every layer's scores sum to the total flow (Tanaka et al. Thm 2)
    sums = [float(v.sum()) for v in s.values()]
    assert sums == pytest.approx([sums[0]] * 3)


def test_synflow_abs_parameters_buffers_eval_and_restore():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(-1, 1)
        model[1].bias.uniform_(-1, 1)
    model.train()
    model[0].weight.requires_grad_(False)
    snap = snapshot(model)
    pruner = build_config(PRUNERS.get("synflow"), {}, "synflow")
    ctx = make_ctx(None, None, input_shape=(2, 4, 4))
    s = pruner.scores(model, ctx)
    assert_untouched(model, snap)
    # independent computation: a copy with every parameter and buffer made |·|, eval mode
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():
        for t in list(ref.parameters()) + [b for b in ref.buffers() if b.is_floating_point()]:
            t.abs_()
    for p in ref.parameters():
        p.requires_grad_(True)
    ref(torch.ones(1, 2, 4, 4)).sum().backward()
    for name, p in prunable_parameters(ref).items():
        torch.testing.assert_close(s[name], (p.grad * p).abs().detach())


def test_synflow_iterative_schedule_and_nesting():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    ctx = make_ctx(None, None, input_shape=(6,))
    seen = []
    pruner = build_config(PRUNERS.get("synflow"), {"iterations": 4}, "synflow")
    alloc = ALLOCATIONS.get("global")()
    orig = alloc.masks

    def spy(scores, density):
        m = orig(scores, density)
        seen.append((density, m))
        return m

    alloc.masks = spy  # type: ignore[method-assign]
    final = pruner.initial_masks(model, ctx, 0.9, alloc)
    assert [d for d, _ in seen] == pytest.approx([0.1 ** ((e + 1) / 4) for e in range(4)])
    for (_, a), (_, b) in zip(seen, seen[1:]):
        assert all(bool((b[n] <= a[n]).all()) for n in a)   # nested masks
    total = final.total()
    assert final.kept() == round(0.1 * total)


# -------------------------------------------------------------------------------------------------
# determinism and bad input

@pytest.mark.parametrize("name", ["random", "magnitude", "snip", "grasp", "synflow"])
@pytest.mark.parametrize("allocation", ["global", "erk"])
def test_scores_and_masks_are_seeded_deterministic(name, allocation):
    model = two_layer()
    x, y = data(30)
    pruner = build_config(PRUNERS.get(name), {"iterations": 5} if name == "synflow" else {}, name)
    alloc = ALLOCATIONS.get(allocation)()
    a = pruner.scores(model, make_ctx(x, y, seed=7))
    b = pruner.scores(model, make_ctx(x, y, seed=7))
    assert all(torch.equal(a[n], b[n]) for n in a)
    m1 = pruner.initial_masks(model, make_ctx(x, y, seed=7), 0.7, alloc)
    m2 = pruner.initial_masks(model, make_ctx(x, y, seed=7), 0.7, alloc)
    assert m1.equal(m2)
    assert m1.kept() == round((1 - 0.7) * m1.total())
    assert all(p.grad is None for p in model.parameters())


def test_data_dependent_flags():
    assert PRUNERS.get("snip").needs_data and PRUNERS.get("grasp").needs_data
    assert not PRUNERS.get("synflow").needs_data


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow", "magnitude", "random"])
def test_model_without_prunable_layers_is_a_config_error(name):
    model = nn.Sequential(nn.BatchNorm1d(4))
    x, y = data(6)
    pruner = build_config(PRUNERS.get(name), {}, name)
    with pytest.raises(ConfigError) as exc:
        pruner.initial_masks(model, make_ctx(x, y), 0.5, ALLOCATIONS.get("global")())
    assert "no prunable layers" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("name", ["snip", "grasp"])
def test_data_scores_refuse_tasks_without_data(name):
    pruner = build_config(PRUNERS.get(name), {}, name)
    with pytest.raises(ConfigError, match="data-free"):
        pruner.scores(two_layer(), make_ctx(None, None))


@pytest.mark.parametrize("sparsity", [1.0, 1.5, -0.1])
def test_bad_sparsity_is_a_config_error(sparsity):
    from benchmark.spec import make_spec

    with pytest.raises(ConfigError) as exc:
        make_spec(task="digits-mlp", pruner="synflow", sparsity=sparsity)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError):
        PRUNERS.get("synflow")(iterations=2).initial_masks(two_layer(), make_ctx(None, None), sparsity,
                                                            ALLOCATIONS.get("global")())


@pytest.mark.parametrize("name,args", [("snip", {"samples_per_class": 0}), ("grasp", {"temperature": 0}),
                                       ("synflow", {"iterations": 0}), ("synflow", {"iterationz": 3})])
def test_bad_hyperparameters_are_config_errors(name, args):
    with pytest.raises(ConfigError) as exc:
        build_config(PRUNERS.get(name), args, f"pruner {name!r}")
    assert "\n" not in str(exc.value)
