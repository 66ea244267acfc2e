"""NanoAdam (PAPERS.md §5): only the selected entries change, the selection is the bottom-k |θ| per
layer (per chunk), excluded layers change fully, masks are respected, the density decays linearly."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pruners import Masks, prunable_parameters
from pruners.registry import ConfigError, build_config
from reparam import REPARAMS
from reparam.nanoadam import NanoAdamOptimizer, bottom_k_indices

from reparam_helpers import Driver, random_masks, regression_loss


def make(**args):
    return build_config(REPARAMS.get("nanoadam"), args, "nanoadam")


def model_with_norm() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 5), nn.Tanh(),
                         nn.Linear(5, 3)).double()


def test_bottom_k_by_hand():
    theta = torch.tensor([[0.5, -0.1, 0.3], [-0.05, 2.0, 0.2]])
    assert bottom_k_indices(theta, 0.5).tolist() == [1, 3, 5]          # |θ|: 0.05, 0.1, 0.2
    keep = torch.tensor([[True, False, True], [True, True, True]])       # 0.1 is pruned
    assert bottom_k_indices(theta, 0.4, keep).tolist() == [3, 5]        # ceil(0.4 · 5) = 2
    # chunks of 3: each chunk keeps its own bottom ceil(0.34 · 3) = 2
    assert bottom_k_indices(theta, 0.34, chunk_size=3).tolist() == [1, 2, 3, 5]


def test_only_selected_entries_change_and_excluded_layers_change_fully():
    model = model_with_norm()
    masks = random_masks(model, 0.75)
    r = make(density=0.25, mask_interval=1)
    d = Driver(model, r, masks, lambda ps: torch.optim.AdamW(ps, lr=1e-2), epochs=1, steps_per_epoch=3)
    loss = regression_loss(d_in=6, d_out=3)
    names = list(prunable_parameters(model))
    assert list(r.selectable_params) == names[:-1]                      # head excluded
    for _ in range(3):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        d.step(loss)
        opt = d.opt
        for n, p in model.named_parameters():
            changed = (p.detach() != before[n]).reshape(-1)
            if n in r.selectable_params:
                idx = opt.selection[id(p)]
                # the selection is the bottom-k of |θ| among the kept entries (ceil of 25 %)
                keep = masks[n].reshape(-1)
                k = math.ceil(0.25 * int(keep.sum()))
                a = before[n].abs().reshape(-1).masked_fill(~keep, float("inf"))
                expected = torch.sort(torch.argsort(a, stable=True)[:k]).values
                assert idx.tolist() == expected.tolist()
                sel = torch.zeros_like(changed)
                sel[idx] = True
                assert not bool((changed & ~sel).any()), n                   # only selected entries move
                assert bool(changed[sel].all()), n
            else:
                if n in masks:   # the head: every kept entry changes
                    assert bool(changed[masks[n].reshape(-1)].all()), n
                else:            # biases, LayerNorm: fully updated
                    assert bool(changed.all()), n


def test_matches_adam_on_selected_entries_and_freezes_moments_elsewhere():
    lin = nn.Linear(4, 3, bias=False).double()
    theta0 = lin.weight.detach().clone()
    g = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    opt = NanoAdamOptimizer([lin.weight], lr=0.1, density=0.5, selectable=[lin.weight], mask_interval=100)
    lin.weight.grad = g.clone()
    opt.step()
    idx = bottom_k_indices(theta0, 0.5)
    sel = torch.zeros(12, dtype=torch.bool)
    sel[idx] = True
    sel = sel.view(3, 4)
    expected = torch.where(sel, theta0 - 0.1 * g / (g.abs() + 1e-8), theta0)   # Adam's first step
    torch.testing.assert_close(lin.weight.detach(), expected)
    st = opt.state[lin.weight]
    assert bool((st["exp_avg"][~sel] == 0).all()) and bool((st["exp_avg_sq"][~sel] == 0).all())
    torch.testing.assert_close(st["exp_avg"][sel], 0.1 * g[sel])


def test_linear_density_decay_and_reselection_interval():
    lin = nn.Linear(10, 10, bias=False).double()
    opt = NanoAdamOptimizer([lin.weight], lr=1e-3, density=0.1, final_density=0.04, density_interval=10,
                            mask_interval=5, selectable=[lin.weight], total_steps=100)
    sizes = []
    for step in range(100):
        lin.weight.grad = torch.ones(10, 10, dtype=torch.float64)
        opt.step()
        sizes.append((opt.density, opt.selection[id(lin.weight)].numel()))
    assert sizes[0] == (pytest.approx(0.1), 10)
    assert sizes[10][0] == pytest.approx(0.1 - 0.06 * 0.1)
    assert sizes[55][0] == pytest.approx(0.1 - 0.06 * 0.5)
    assert sizes[99][0] == pytest.approx(0.1 - 0.06 * 0.9)
    assert sizes[99][1] == math.ceil((0.1 - 0.06 * 0.9) * 100)


def test_runner_pipeline_memory_is_dense_moments_plus_indices():
    model = model_with_norm()
    masks = Masks.ones(model)
    r = make(density=0.1)
    d = Driver(model, r, masks, lambda ps: torch.optim.Adam(ps, lr=1e-3), epochs=1, steps_per_epoch=2)
    d.step(regression_loss(d_in=6, d_out=3))
    assert isinstance(d.opt, NanoAdamOptimizer) and d.opt.base_optimizer is d.opt
    assert d.opt.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("args", [{"density": 0.0}, {"density": 1.5}, {"density": -0.1},
                                  {"final_density": 2.0}, {"mask_interval": 0}, {"chunk_size": -1}])
def test_bad_input(args):
    with pytest.raises(ConfigError) as exc:
        make(**args)
    assert "\n" not in str(exc.value)
