"""connectivity(): effective sparsity, dead units and collapse against networkx path search."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch import nn

from pruners import ConfigError, Masks
from pruners.connectivity import connectivity
from pruners.masks import prunable_parameters


def random_masks(model: nn.Module, density: float, seed: int) -> Masks:
    g = torch.Generator().manual_seed(seed)
    return Masks({n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model).items()})


def effective_from_graph(graph: nx.DiGraph, inputs: list, outputs: list,
                         edges: dict[str, list[tuple[object, object, int]]], units: dict[str, list]):
    """Reference: an edge is effective iff its tail is reachable from an input and its head reaches an
    output; a unit is dead iff it is not on any input→output path.  ``edges[layer]`` lists
    (tail, head, number of kept weights behind that edge)."""
    from_in = set(inputs)
    for i in inputs:
        from_in |= nx.descendants(graph, i)
    to_out = set(outputs)
    for o in outputs:
        to_out |= nx.ancestors(graph, o)
    eff = {layer: sum(k for u, v, k in es if u in from_in and v in to_out) for layer, es in edges.items()}
    dead = {layer: sum(1 for u in us if not (u in from_in and u in to_out)) for layer, us in units.items()}
    return eff, dead


def check(model, masks, input_shape, graph, inputs, outputs, edges, units):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    got = connectivity(model, masks, input_shape)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])   # the model is not modified
    eff, dead = effective_from_graph(graph, inputs, outputs, edges, units)
    total = masks.total()
    assert got["effective_kept"] == sum(eff.values())
    assert got["effective_sparsity"] == pytest.approx(1 - sum(eff.values()) / total)
    assert got["dead_neurons_layer"] == dead
    assert got["dead_neurons"] == sum(dead.values())
    assert got["collapsed_layers"] == [n for n in eff if eff[n] == 0]
    assert got["effective_sparsity"] >= masks.sparsity() - 1e-12
    return got


def linear_edges(graph, mask: torch.Tensor, tails: list, heads: list) -> list:
    out = []
    for j, h in enumerate(heads):
        for i, t in enumerate(tails):
            if bool(mask[j, i]):
                graph.add_edge(t, h)
                out.append((t, h, 1))
    return out


@pytest.mark.parametrize("seed,density", [(0, 0.15), (1, 0.25), (2, 0.08), (3, 0.5)])
def test_mlp_matches_networkx(seed, density):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 7), nn.ReLU(), nn.Linear(7, 3))
    masks = random_masks(model, density, seed)
    names = list(prunable_parameters(model))
    graph = nx.DiGraph()
    layers = [[("in", i) for i in range(6)]] + [[(n, j) for j in range(model[k].out_features)]
                                                for n, k in zip(names, (0, 2, 4))]
    graph.add_nodes_from(u for layer in layers for u in layer)
    edges = {n: linear_edges(graph, masks[n], layers[i], layers[i + 1]) for i, n in enumerate(names)}
    units = {n: layers[i + 1] for i, n in enumerate(names)}
    check(model, masks, (6,), graph, layers[0], layers[-1], edges, units)


class ResMLP(nn.Module):
    """x → l1 → relu → h1;  h2 = relu(l2(h1) + h1);  out = l3(h2): one identity residual addition."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = torch.relu(self.l1(x))
        return self.l3(torch.relu(self.l2(h1) + h1))


@pytest.mark.parametrize("seed,density", [(0, 0.2), (1, 0.3), (4, 0.12)])
def test_residual_matches_networkx(seed, density):
    torch.manual_seed(seed)
    model = ResMLP()
    masks = random_masks(model, density, seed)
    graph = nx.DiGraph()
    x = [("in", i) for i in range(5)]
    h1 = [("l1", j) for j in range(6)]
    z2 = [("l2", j) for j in range(6)]
    s = [("sum", j) for j in range(6)]
    out = [("l3", k) for k in range(3)]
    graph.add_nodes_from(x + h1 + z2 + s + out)
    edges = {"l1.weight": linear_edges(graph, masks["l1.weight"], x, h1),
             "l2.weight": linear_edges(graph, masks["l2.weight"], h1, z2),
             "l3.weight": linear_edges(graph, masks["l3.weight"], s, out)}
    for j in range(6):
        graph.add_edge(z2[j], s[j])
        graph.add_edge(h1[j], s[j])   # the identity shortcut
    check(model, masks, (5,), graph, x, out, edges, {"l1.weight": h1, "l2.weight": z2, "l3.weight": out})


@pytest.mark.parametrize("seed,density", [(0, 0.1), (1, 0.2), (2, 0.05)])
def test_conv_channel_level_matches_networkx(seed, density):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(5, 3))
    masks = random_masks(model, density, seed)
    graph = nx.DiGraph()
    x = [("in", c) for c in range(2)]
    c1 = [("c1", c) for c in range(4)]
    c2 = [("c2", c) for c in range(5)]
    out = [("fc", k) for k in range(3)]
    graph.add_nodes_from(x + c1 + c2 + out)

    def conv_edges(mask, tails, heads):
        es = []
        for j, h in enumerate(heads):
            for i, t in enumerate(tails):
                k = int(mask[j, i].sum())
                if k:   # channel pair connected when any kernel entry is kept
                    graph.add_edge(t, h)
                    es.append((t, h, k))
        return es

    edges = {"0.weight": conv_edges(masks["0.weight"], x, c1), "4.weight": conv_edges(masks["4.weight"], c1, c2),
             "8.weight": linear_edges(graph, masks["8.weight"], c2, out)}
    check(model, masks, (2, 8, 8), graph, x, out, edges, {"0.weight": c1, "4.weight": c2, "8.weight": out})


def test_collapsed_middle_layer_disconnects_chain():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2))
    masks = Masks.ones(model)
    masks = Masks({**dict(masks), "2.weight": torch.zeros(5, 5, dtype=torch.bool)})
    got = connectivity(model, masks)  # input shape inferred from the first Linear layer
    assert got["effective_sparsity"] == 1.0 and got["disconnected"]
    assert got["collapsed_layers"] == ["0.weight", "2.weight", "4.weight"]
    assert got["dead_neurons"] == 5 + 5 + 2
    dense = connectivity(model, Masks.ones(model))
    assert dense["effective_sparsity"] == 0.0 and dense["dead_neurons"] == 0


def test_resnet_block_shortcut_keeps_network_connected():
    """Emptying conv1 of a CIFAR ResNet block kills that block's conv2 but not the network (identity path)."""
    from benchmark.tasks.models import MODELS

    torch.manual_seed(0)
    model = MODELS.get("resnet20")((3, 8, 8), 10)
    masks = dict(Masks.ones(model))
    masks["layers.0.0.conv1.weight"] = torch.zeros_like(masks["layers.0.0.conv1.weight"])
    masks = Masks(masks)
    got = connectivity(model, masks, (3, 8, 8))
    conv2 = masks["layers.0.0.conv2.weight"].numel()
    assert got["effective_kept"] == masks.kept() - conv2
    assert got["collapsed_layers"] == ["layers.0.0.conv1.weight", "layers.0.0.conv2.weight"]
    assert got["dead_neurons_layer"]["layers.0.0.conv1.weight"] == 16       # no input
    assert got["dead_neurons_layer"]["layers.0.0.conv2.weight"] == 16       # no input either
    assert got["dead_neurons"] == 32 and not got["disconnected"]


def test_needs_input_shape_for_conv_and_prunable_layers():
    with pytest.raises(ConfigError, match="input_shape"):
        conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))
        connectivity(conv, Masks.ones(conv))
    with pytest.raises(ConfigError, match="no prunable layers"):
        connectivity(nn.Sequential(nn.ReLU()), {})


def _structured_masks(model: nn.Module, seed: int) -> Masks:
    """Random masks plus whole output units / input channels removed: collapses and dead units."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, p in prunable_parameters(model).items():
        m = torch.rand(p.shape, generator=g) < 0.3
        m[torch.rand(p.shape[0], generator=g) < 0.3] = False            # dead output units
        m[:, torch.rand(p.shape[1], generator=g) < 0.2] = False         # unused inputs
        out[n] = m
    return Masks(out)


@pytest.mark.parametrize("name,shape", [("mlp", (64,)), ("lenet5", (1, 28, 28)), ("resnet20", (3, 16, 16)),
                                        ("wrn22-2", (3, 16, 16)), ("resnet18", (3, 16, 16)),
                                        ("vgg11", (3, 32, 32)), ("resnet50", (3, 32, 32))])
def test_float32_propagation_equals_float64_reference(name, shape):
    """The default (float32) pass gives exactly the float64 reference's answers, the model untouched."""
    from benchmark.tasks.models import MODELS

    torch.manual_seed(0)
    model = MODELS.get(name)(shape, 10)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cases = [random_masks(model, d, s) for s, d in enumerate((0.5, 0.05, 0.005, 0.0005))]
    cases.append(_structured_masks(model, 7))
    for masks in cases:
        assert connectivity(model, masks, shape) == connectivity(model, masks, shape, dtype=torch.float64)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


class _WideChain(nn.Module):
    """A prunable layer, then a long chain of wide non-prunable layers (weights set to 1 in the
    propagation): path counts pass 3.4e38 (float32 overflows to inf, then 0 · inf = NaN)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 256)
        self.chain = nn.Sequential(*[nn.Linear(256, 256) for _ in range(18)])
        for layer in self.chain:
            layer.sparsebench_prunable = False
        self.last = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.chain(self.first(x)))


def test_float32_overflow_falls_back_to_float64():
    model = _WideChain()
    masks = Masks({n: torch.zeros(p.shape, dtype=torch.bool) for n, p in prunable_parameters(model).items()})
    masks = Masks({**dict(masks), "first.weight": torch.ones(256, 4, dtype=torch.bool),
                   "last.weight": torch.eye(2, 256, dtype=torch.bool)})
    ref = connectivity(model, masks, (4,), dtype=torch.float64)
    assert ref["effective_kept"] == 256 * 4 + 2 and not ref["disconnected"]
    wrong = connectivity(model, masks, (4,), dtype=torch.float32)   # what float32 alone would report
    assert wrong != ref
    assert connectivity(model, masks, (4,)) == ref
