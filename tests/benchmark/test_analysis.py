"""benchmark.analysis: pruner mask functions, the NTK of a run's masks, the per-run graphon summary."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.analysis import (NTK_SAMPLES, PrunerSpec, build_mlp, estimate_masks, fixed_batch, hidden_masks,
                                masks_ntk, prune_model, pruner_mask_fn, prune_context, run_graphon_summary,
                                task_data, train_loss_curve)
from benchmark.runfolder import read_result, run_dir
from benchmark.runner import execute
from benchmark.spec import make_spec
from graphon.ntk import dense_ntk, graphon_ntk, graphons_from_masks
from graphon.spectrum import spectrum_metrics
from pruners import Masks
from pruners.registry import ConfigError


@pytest.fixture(scope="module")
def digits():
    return task_data("digits-mlp")


def test_fixed_batch_is_the_first_test_samples_flattened(digits) -> None:
    x = fixed_batch(digits.data, 10)
    assert x.shape == (10, 64) and x.dtype == torch.float64
    assert torch.equal(x, digits.data.test_x[:10].reshape(10, -1).double())
    with pytest.raises(ConfigError, match="at least 2"):
        fixed_batch(digits.data, 1)


def test_pruner_mask_fn_returns_seeded_hidden_masks(digits) -> None:
    fn = pruner_mask_fn(digits, PrunerSpec("random"), 0.75, depth=3)
    a, b, c = fn(32, 0), fn(32, 0), fn(32, 1)
    assert list(a) == ["layers.2.weight", "layers.4.weight"]      # 3 hidden layers: 2 hidden->hidden masks
    assert all(m.shape == (32, 32) and m.dtype == torch.bool for m in a.values())
    assert all(torch.equal(a[n], b[n]) for n in a)                 # same trial, same masks
    assert any(not torch.equal(a[n], c[n]) for n in a)             # trial = seed offset
    # the whole network is pruned under one global budget: 25 % of all weights kept
    model = build_mlp(digits.d, 32, 3, digits.num_outputs, seed=0)
    masks = prune_model(model, PrunerSpec("random"), 0.75, prune_context(digits, 0))
    assert masks.kept() == round(0.25 * masks.total())
    assert all(torch.equal(hidden_masks(masks)[n], a[n]) for n in a)


def test_pruner_spec_refuses_training_time_pruners_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match="during training"):
        PrunerSpec("rigl").build()
    with pytest.raises(ConfigError, match="snipp"):
        PrunerSpec("snipp").build()
    with pytest.raises(ConfigError, match="depth=1"):
        pruner_mask_fn(None, PrunerSpec("random"), 0.5, depth=1)  # type: ignore[arg-type]


def test_masks_ntk_of_dense_masks_is_the_dense_ntk(digits) -> None:
    model = build_mlp(digits.d, 16, 2, digits.num_outputs, bias=False)
    ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    x = fixed_batch(digits.data, 12)
    np.testing.assert_allclose(masks_ntk(ones, x, K=4), dense_ntk(x, 2), rtol=1e-10, atol=1e-12)


def test_train_loss_curve_keeps_pruned_weights_at_zero(digits) -> None:
    model = build_mlp(digits.d, 16, 2, digits.num_outputs, seed=1)
    masks = prune_model(model, PrunerSpec("random"), 0.8, prune_context(digits, 1))
    curve = train_loss_curve(model, masks, digits, steps=25, lr=1e-2, batch_size=32, seed=1)
    assert curve.shape == (25,) and np.isfinite(curve).all()
    params = dict(model.named_parameters())
    for n, m in masks.items():
        assert bool((params[n][~m] == 0).all())
        assert bool((params[n][m] != 0).any())


def test_estimate_masks_rejects_bad_masks(tmp_path) -> None:
    with pytest.raises(ConfigError, match="larger than a side of layer 'b'"):
        estimate_masks({"a": torch.ones(16, 16, dtype=torch.bool), "b": torch.ones(4, 16, dtype=torch.bool)}, K=8)
    with pytest.raises(ConfigError, match="not binary"):
        estimate_masks({"a": torch.full((8, 8), 0.5)}, K=4)
    with pytest.raises(ConfigError, match="not 2-d"):
        estimate_masks({"a": torch.ones(8, dtype=torch.bool)}, K=4)
    df = estimate_masks({"a": torch.eye(8, dtype=torch.bool)}, K=4, out=tmp_path)
    assert math.isclose(df.loc[0, "density"], 1 / 8) and (tmp_path / "graphons.png").exists()


def test_run_summary_of_a_conv_net_says_why_there_is_no_ntk(digits) -> None:
    masks = Masks({"conv.weight": torch.ones(6, 1, 3, 3, dtype=torch.bool),
                   "fc.weight": torch.ones(10, 24, dtype=torch.bool)})
    out = run_graphon_summary(masks, digits.data, K=4)
    assert "'conv.weight'" in out["ntk_skipped"] and "ntk_top5_energy" not in out
    assert out["layers"]["conv.weight"]["kind"] == "conv"


def test_runner_attaches_graphon_and_ntk_metrics(tmp_path) -> None:
    spec = make_spec("digits-mlp", "magnitude", 0.8, seed=0, recipe={"epochs": 1}, analysis={"graphon": True})
    rec = execute(spec, tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    g = rec["graphon"]
    for key in ("ntk_decay_rate", "ntk_effective_rank", "ntk_spectral_gap", "ntk_top5_energy", "ntk_lambda_max",
                "graphon_heterogeneity_mean", "graphon_distance_to_constant_mean", "graphon_dead_share_mean",
                "graphon_dead_neuron_share"):
        assert math.isfinite(g[key]), key
    assert g["ntk_samples"] == NTK_SAMPLES and len(g["ntk_eigenvalues"]) == NTK_SAMPLES
    assert set(g["layers"]) == {"layers.0.weight", "layers.2.weight", "layers.4.weight"}
    assert np.asarray(g["layers"]["layers.2.weight"]["matrix"]).shape == (64, 64)
    # recompute the NTK from the saved masks on the documented batch (first 256 test samples)
    masks = Masks.load(run_dir(tmp_path, spec.run_id) / "masks.pt")
    td = task_data("digits-mlp")
    x = td.data.test_x[:NTK_SAMPLES].reshape(NTK_SAMPLES, -1).double()
    gs, w_out = graphons_from_masks(list(masks.items()), 64, d=64)
    met = spectrum_metrics(graphon_ntk(gs, x, output_density=w_out))
    assert math.isclose(g["ntk_lambda_max"], met.lambda_max, rel_tol=1e-9)
    assert math.isclose(g["ntk_top5_energy"], met.top5_energy, rel_tol=1e-9)
    assert read_result(run_dir(tmp_path, spec.run_id))["graphon"]["ntk_top5_energy"] == g["ntk_top5_energy"]
