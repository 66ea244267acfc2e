"""FORCE against hand computations (float64), the density schedule, purity, and the conformance kit."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruners import ALLOCATIONS, Masks, PruneContext
from pruners.conformance import KitConfig
from pruners.testing import parametrize_with_checks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def ctx_for(x, y, loss_fn=F.cross_entropy, batch=None):
    return PruneContext(seed=0, batches=lambda n: [(x, y)], loss_fn=loss_fn, device=torch.device("cpu"),
                        num_classes=2, input_shape=tuple(x.shape[1:]), prune_batch_size=batch or len(y))


def test_first_step_is_connection_sensitivity_by_hand(force_registered):
    torch.manual_seed(0)
    model = nn.Linear(3, 2, bias=False).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1])
    W = model.weight.detach().clone()
    p = torch.softmax(x @ W.T, dim=1)
    grad = (p - F.one_hot(y, 2).double()).T @ x / len(y)          # ∂ mean CE / ∂W
    scores = force_registered().scores(model, ctx_for(x, y))
    torch.testing.assert_close(scores["weight"], (W * grad).abs(), rtol=1e-12, atol=1e-15)


def test_saliency_of_a_pruned_weight_uses_the_original_weight(force_registered):
    """Eqs. 5–6: gradient at θ̄ = c ⊙ θ₀, multiplied by θ₀ — a pruned weight keeps a saliency."""
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -2.0]], dtype=torch.float64))
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    mse = lambda out, t: ((out.squeeze(-1) - t) ** 2).mean()  # noqa: E731
    c = Masks({"weight": torch.tensor([[True, False]])})
    r = x[:, 0] * 0.5 - y                                   # residual of the pruned network θ̄ = [0.5, 0]
    g = torch.stack([(2 * r * x[:, 0]).mean(), (2 * r * x[:, 1]).mean()])
    want = (torch.tensor([0.5, -2.0], dtype=torch.float64) * g).abs()
    got = force_registered().saliency(model, ctx_for(x, y, mse), c)["weight"][0]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert got[1] > 0  # the pruned connection can come back


def test_density_schedules():
    from sparsebench_force.force import densities

    assert densities(0.1, 4) == pytest.approx([0.1 ** 0.25, 0.1 ** 0.5, 0.1 ** 0.75, 0.1], rel=1e-15)
    assert densities(0.1, 4, "linear") == pytest.approx([0.775, 0.55, 0.325, 0.1], rel=1e-15)
    assert densities(0.3, 1) == [0.3]


def test_one_iteration_keeps_the_top_saliencies(force_registered):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).double()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 2, (16,))
    ctx = ctx_for(x, y)
    pruner = force_registered(iterations=1)
    s = pruner.scores(model, ctx)
    masks = pruner.initial_masks(model, ctx, 0.75, ALLOCATIONS.get("global")())
    flat = torch.cat([v.reshape(-1) for v in s.values()])
    k = round(0.25 * flat.numel())
    threshold = flat.sort(descending=True).values[k - 1]
    assert masks.kept() == k
    for n in s:
        assert bool((s[n][masks[n]] >= threshold).all()) and bool((s[n][~masks[n]] <= threshold).all())


def test_model_untouched_and_density_exact(force_registered):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 6), torch.randint(0, 2, (16,))
    masks = force_registered(iterations=5).initial_masks(model, ctx_for(x, y), 0.9, ALLOCATIONS.get("global")())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert masks.kept() == round(0.1 * masks.total())


def test_bad_hyperparameters_are_one_line_config_errors(force_registered):
    from pruners import ConfigError
    from pruners.registry import build_config

    with pytest.raises(ConfigError, match="schedule 'cubic' is unknown"):
        build_config(force_registered, {"schedule": "cubic"}, "pruner 'force'")
    with pytest.raises(ConfigError, match="iterations must be >= 1"):
        build_config(force_registered, {"iterations": 0}, "pruner 'force'")


@parametrize_with_checks(["force"], config=KitConfig(models=("mlp", "residual")))
def test_sparsebench_conformance(target, check):
    """The suite's conformance kit, one test per check (ids such as ``force-density``)."""
    check(target)


def test_entry_point_names_the_registered_class(force_registered):
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["sparsebench.pruners"]
    module, _, attr = eps["force"].partition(":")
    assert getattr(sys.modules[module], attr) is force_registered
