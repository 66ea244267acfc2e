"""SynFlow's defining property (Tanaka et al. 2020, §5-6): at extreme sparsity it avoids layer collapse,
where global magnitude pruning at initialisation empties a layer and disconnects the network."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.tasks.models import apply_init
from pruners import ALLOCATIONS, PRUNERS, PruneContext
from pruners.connectivity import connectivity


def small_vgg() -> nn.Module:
    """A VGG-like conv-BN-ReLU stack (8-16-M-32-32, GAP, linear), Kaiming-normal as in our CIFAR tasks."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    c = 3
    for spec in (8, 16, "M", 32, 32):
        if spec == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, spec, 3, padding=1), nn.BatchNorm2d(spec), nn.ReLU()]
            c = spec
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return apply_init(nn.Sequential(*layers), "kaiming_normal")


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_synflow_avoids_collapse_where_global_magnitude_collapses(one_thread):
    model = small_vgg()
    ctx = PruneContext(seed=0, batches=None, loss_fn=nn.functional.cross_entropy, device=torch.device("cpu"),
                       num_classes=10, input_shape=(3, 8, 8))
    alloc = ALLOCATIONS.get("global")()
    sparsity = 0.995
    mag = PRUNERS.get("magnitude")().initial_masks(model, ctx, sparsity, alloc)
    syn = PRUNERS.get("synflow")().initial_masks(model, ctx, sparsity, alloc)   # E = 100 rounds
    total = mag.total()
    assert mag.kept() == syn.kept() == int(round((1 - sparsity) * total))
    # magnitude: the widest-fan-in conv (smallest Kaiming weights) is emptied → no path remains
    assert mag.collapsed_layers() != []
    assert connectivity(model, mag, (3, 8, 8))["disconnected"]
    # SynFlow: every layer keeps weights and the network stays connected
    assert syn.collapsed_layers() == []
    conn = connectivity(model, syn, (3, 8, 8))
    assert not conn["disconnected"] and conn["collapsed_layers"] == []
    assert conn["effective_sparsity"] < 1.0
