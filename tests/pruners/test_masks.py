"""Masks: densities, validation, persistence, export to torch.nn.utils.prune."""
import json

import pytest
import torch
from torch import nn

from pruners import ALLOCATIONS, ConfigError, Masks, prunable_parameters


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def test_prunable_parameters_are_linear_and_conv_weights_only():
    assert list(prunable_parameters(tiny())) == ["0.weight", "3.weight"]


def test_density_counts_and_collapse():
    m = Masks({"a": torch.tensor([[True, False], [False, False]]), "b": torch.zeros(3, dtype=torch.bool)})
    assert m.counts() == {"a": (1, 4), "b": (0, 3)}
    assert m.density() == pytest.approx(1 / 7)
    assert m.sparsity() == pytest.approx(6 / 7)
    assert m.layer_density() == {"a": 0.25, "b": 0.0}
    assert m.collapsed_layers() == ["b"]


def test_non_bool_mask_is_refused():
    with pytest.raises(ConfigError, match="torch.bool"):
        Masks({"a": torch.ones(2)})


def test_validate_names_and_shapes():
    model = tiny()
    Masks.ones(model).validate(model)
    with pytest.raises(ConfigError, match="not prunable parameters"):
        Masks({"1.weight": torch.ones(2, dtype=torch.bool)}).validate(model)
    with pytest.raises(ConfigError, match="shape"):
        Masks({"0.weight": torch.ones(2, 1, 3, 3, dtype=torch.bool),
               "3.weight": torch.ones(3, 31, dtype=torch.bool)}).validate(model)
    with pytest.raises(ConfigError, match="missing"):
        Masks({"0.weight": torch.ones(2, 1, 3, 3, dtype=torch.bool)}).validate(model)


def test_save_load_roundtrip_and_report(tmp_path):
    model = tiny()
    scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
    masks = ALLOCATIONS.get("global")().masks(scores, 0.3)
    masks.save(tmp_path / "masks.pt")
    again = Masks.load(tmp_path / "masks.pt")
    assert again.equal(masks)
    report = json.loads((tmp_path / "masks.pt.json").read_text())
    assert report["kept"] == masks.kept() == round(0.3 * masks.total())
    assert report["layers"]["3.weight"]["total"] == 96


def test_load_corrupt_or_missing_file_is_a_config_error(tmp_path):
    bad = tmp_path / "masks.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="corrupt"):
        Masks.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Masks.load(tmp_path / "nope.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="dict of name"):
        Masks.load(tmp_path / "list.pt")


def test_export_to_torch_prune_gives_the_same_function():
    model = tiny()
    g = torch.Generator().manual_seed(3)
    masks = Masks({n: torch.rand(p.shape, generator=g) > 0.5 for n, p in prunable_parameters(model).items()})
    x = torch.randn(4, 1, 6, 6)
    ours = tiny()
    masks.apply_(ours)
    masks.to_torch_prune(model)
    model.eval(), ours.eval()
    assert torch.equal(model[0].weight_mask.bool(), masks["0.weight"])
    torch.testing.assert_close(model(x), ours(x))


def test_global_allocation_is_exact_and_breaks_ties_by_index():
    scores = {"a": torch.ones(10), "b": torch.ones(10)}
    masks = ALLOCATIONS.get("global")().masks(scores, 0.35)
    assert masks.kept() == 7
    assert masks["a"].tolist() == [True] * 7 + [False] * 3   # ties: lower global index first
    assert masks["b"].sum() == 0


def test_uniform_allocation_keeps_the_density_in_every_layer():
    scores = {"a": torch.rand(100), "b": torch.rand(50)}
    masks = ALLOCATIONS.get("uniform")().masks(scores, 0.1)
    assert masks.counts() == {"a": (10, 100), "b": (5, 50)}


def test_dense_first_and_last_options():
    scores = {"a": torch.rand(10), "b": torch.rand(80), "c": torch.rand(10)}
    masks = ALLOCATIONS.get("uniform")(dense_first=True, dense_last=True).masks(scores, 0.5)
    assert masks.counts()["a"] == (10, 10) and masks.counts()["c"] == (10, 10)
    assert masks.kept() == 50
    with pytest.raises(ConfigError, match="exceeds the target density"):
        ALLOCATIONS.get("global")(dense_first=True).masks({"a": torch.rand(90), "b": torch.rand(10)}, 0.5)


def test_global_allocation_keeps_float64_precision():
    # two scores that differ only beyond float32 precision must not tie
    a = torch.tensor([1.0 + 1e-12, 1.0], dtype=torch.float64)
    b = torch.tensor([1.0 + 2e-12], dtype=torch.float64)
    masks = ALLOCATIONS.get("global")().masks({"a": a, "b": b}, 1 / 3)
    assert masks["b"].tolist() == [True] and masks["a"].sum() == 0


def test_counts_are_cached_but_follow_an_in_place_change_of_a_mask_tensor():
    a = torch.tensor([[True, False, True], [False, False, True]])
    b = torch.zeros(4, dtype=torch.bool)
    masks = Masks({"a.weight": a, "b.weight": b})
    assert masks.counts() == {"a.weight": (3, 6), "b.weight": (0, 4)}
    assert masks.collapsed_layers() == ["b.weight"]
    assert masks.density() == pytest.approx(3 / 10)
    b[1:3] = True  # the caller's tensor is the mask's storage: the next count must see it
    assert masks.counts() == {"a.weight": (3, 6), "b.weight": (2, 4)}
    assert masks.collapsed_layers() == []
    assert masks.density() == pytest.approx(5 / 10)
    assert Masks({}).counts() == {} and Masks({}).density() == 1.0
