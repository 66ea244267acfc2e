"""Tests of graphon.sweep, graphon.summary and graphon.plots."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphon.estimate import estimate
from graphon.plots import plot_convergence, plot_graphons, plot_spectrum
from graphon.summary import summarize_masks
from graphon.sweep import convergence_sweep
from pruners.registry import ConfigError


def _er_fn(p: float = 0.3):
    def mask_fn(width: int, trial: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 * width + trial)
        return {f"h{i}": torch.rand(width, width, generator=g) < p for i in range(2)}
    return mask_fn


def test_convergence_sweep_on_random_masks() -> None:
    df = convergence_sweep(_er_fn(), [64, 128, 256, 512], trials=3, K=16)
    assert list(df.columns[:6]) == ["width", "layer", "distance", "distance_to_constant", "heterogeneity",
                                    "dead_share"]
    assert len(df) == 8
    for _, g in df.groupby("layer"):
        d = g.sort_values("width")["distance"].to_numpy()
        assert d[-1] == 0.0
        assert d[0] > d[1] > d[2] > 0                     # converges towards the widest estimate
    assert (df["density"] - 0.3).abs().max() < 0.01
    assert (df["dead_share"] == 0).all()
    het = df[df.layer == "h0"].sort_values("width")["heterogeneity"].to_numpy()
    assert het[0] > het[-1]


def test_sweep_returns_estimates_and_uses_cut_metric() -> None:
    df, est = convergence_sweep(_er_fn(), [32, 64], trials=1, K=8, metric="cut", return_estimates=True)
    assert est[(64, "h1")].shape == (8, 8)
    assert (df["distance"] >= 0).all()


@pytest.mark.parametrize("widths, K, msg", [
    ([100, 50, 200], 8, "not strictly increasing"),
    ([100, 100], 8, "not strictly increasing"),
    ([100], 8, "fewer than two"),
    ([32, 64], 48, "larger than the narrowest width"),
])
def test_sweep_bad_input(widths: list[int], K: int, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        convergence_sweep(_er_fn(), widths, trials=1, K=K)


def test_sweep_rejects_changing_layers_and_small_sides() -> None:
    def fn(width: int, trial: int) -> dict[str, torch.Tensor]:
        return {f"w{width}": torch.ones(width, width, dtype=torch.bool)}
    with pytest.raises(ConfigError, match="same layers"):
        convergence_sweep(fn, [16, 32], trials=1, K=4)

    def thin(width: int, trial: int) -> dict[str, torch.Tensor]:
        return {"h": torch.ones(width, 4, dtype=torch.bool)}
    with pytest.raises(ConfigError, match="larger than a side"):
        convergence_sweep(thin, [16, 32], trials=1, K=8)

    def fuzzy(width: int, trial: int) -> dict[str, torch.Tensor]:
        return {"h": torch.full((width, width), 0.5)}
    with pytest.raises(ConfigError, match="not binary"):
        convergence_sweep(fuzzy, [16, 32], trials=1, K=8)


def _mlp_masks(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    m1 = torch.rand(200, 30, generator=g) < 0.5
    m1[:, :5] = False                                      # five input features unused
    m2 = torch.rand(100, 200, generator=g) < 0.3
    m2[:10] = False                                        # ten neurons of layer 2 receive nothing
    m3 = torch.rand(10, 100, generator=g) < 0.8
    return {"fc1.weight": m1, "fc2.weight": m2, "fc3.weight": m3, "fc3.bias": torch.ones(10, dtype=torch.bool)}


def test_summarize_mlp_with_ntk() -> None:
    masks = _mlp_masks()
    x = torch.randn(32, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = summarize_masks(masks, K=16, ntk_batch=x)
    assert set(s["layers"]) == {"fc1.weight", "fc2.weight", "fc3.weight"}   # the bias is skipped
    l2 = s["layers"]["fc2.weight"]
    assert l2["K"] == [16, 16] and s["layers"]["fc3.weight"]["K"] == [10, 16]
    assert l2["dead_outputs"] == pytest.approx(0.1)
    assert s["layers"]["fc1.weight"]["dead_inputs"] == pytest.approx(5 / 30)
    assert l2["heterogeneity"] > 0.05                      # the dead rows make it non-constant
    assert s["graphon_heterogeneity_mean"] == pytest.approx(
        np.mean([v["heterogeneity"] for v in s["layers"].values()]))
    # hidden neurons: layer-2 neurons without input (10 of 100); none of layer 1 is isolated
    assert s["graphon_dead_neuron_share"] == pytest.approx(10 / 300)
    for key in ("ntk_decay_rate", "ntk_effective_rank", "ntk_spectral_gap", "ntk_top5_energy",
                "ntk_lambda_max"):
        assert np.isfinite(s[key])
    assert len(s["ntk_eigenvalues"]) == 32
    assert 0 < s["ntk_top5_energy"] <= 1


def test_summarize_random_mask_is_near_constant() -> None:
    g = torch.Generator().manual_seed(0)
    s = summarize_masks({"h": torch.rand(512, 512, generator=g) < 0.2}, K=16)
    e = estimate(torch.rand(512, 512, generator=torch.Generator().manual_seed(0)) < 0.2, 16)
    assert s["layers"]["h"]["distance_to_constant"] == pytest.approx(e.heterogeneity, rel=0.05)
    assert s["layers"]["h"]["heterogeneity"] < 0.035   # formula of test_estimate: ≈ 0.028 at n=512, K=16
    assert "ntk_top5_energy" not in s


def test_summarize_conv_as_channel_connectivity_and_refuses_ntk() -> None:
    conv = torch.zeros(8, 4, 3, 3, dtype=torch.bool)
    conv[:4, :, 1, 1] = True                              # half the filters use only the centre tap
    masks = {"conv.weight": conv, "fc.weight": torch.ones(10, 8, dtype=torch.bool)}
    s = summarize_masks(masks, K=4)
    c = s["layers"]["conv.weight"]
    assert c["kind"] == "conv" and c["K"] == [4, 4]
    assert c["density"] == pytest.approx(0.5)
    assert c["dead_outputs"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="does not cover.*'conv.weight' is a 4-d mask") as info:
        summarize_masks(masks, K=4, ntk_batch=torch.randn(4, 4))
    assert "\n" not in str(info.value)


def test_summarize_bad_mask() -> None:
    with pytest.raises(ConfigError, match="not binary"):
        summarize_masks({"h": torch.full((4, 4), 0.5)}, K=2)


def test_plots_write_files(tmp_path) -> None:
    ests = {f"layer{i}": estimate(torch.rand(64, 64) < 0.1 * (i + 1), 8) for i in range(3)}
    p1 = plot_graphons(ests, tmp_path / "g" / "heat.png", title="random")
    df = convergence_sweep(_er_fn(), [32, 64, 128], trials=1, K=8)
    p2 = plot_convergence(df, tmp_path / "conv.png")
    p3 = plot_spectrum({"a": np.arange(1, 30) ** -1.5, "b": np.arange(1, 30) ** -1.0}, tmp_path / "spec.svg")
    for p in (p1, p2, p3):
        assert p.exists() and p.stat().st_size > 1000
    with pytest.raises(ConfigError, match="lacks columns"):
        plot_convergence(df.drop(columns=["distance"]), tmp_path / "x.png")
