"""`sparsebench graphon estimate | sweep | ntk` on tiny settings, and their one-line errors (exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from graphon.estimate import estimate
from pruners import Masks


def _mlp_masks(seed: int = 0, d: int = 64, width: int = 16, classes: int = 10) -> Masks:
    g = torch.Generator().manual_seed(seed)
    shapes = [(width, d), (width, width), (classes, width)]
    return Masks({f"layers.{2 * i}.weight": torch.rand(s, generator=g) < 0.4 for i, s in enumerate(shapes)})


def test_estimate_writes_table_heatmaps_and_ntk(tmp_path, capsys) -> None:
    masks = _mlp_masks()
    masks.save(tmp_path / "masks.pt")
    out = tmp_path / "est"
    assert main(["graphon", "estimate", str(tmp_path / "masks.pt"), "--K", "4", "--out", str(out),
                 "--ntk", "--task", "digits-mlp", "--samples", "16"]) == 0
    df = pd.read_csv(out / "estimate.csv")
    assert list(df["layer"]) == list(masks)
    hand = estimate(masks["layers.2.weight"], 4)
    row = df[df.layer == "layers.2.weight"].iloc[0]
    assert np.isclose(row["heterogeneity"], hand.matrix.std()) and np.isclose(row["density"], hand.density)
    assert (out / "graphons.png").stat().st_size > 0 and (out / "ntk_spectrum.png").exists()
    ntk = json.loads((out / "ntk.json").read_text())
    assert all(np.isfinite(v) for v in ntk.values())
    assert "ntk_top5_energy" in capsys.readouterr().out


def test_estimate_of_a_run_folder_defaults_to_its_graphon_subfolder(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _mlp_masks().save(run / "masks.pt")
    (run / "spec.json").write_text(json.dumps({"task": "digits-mlp"}))
    assert main(["graphon", "estimate", str(run), "--K", "8", "--ntk", "--samples", "8"]) == 0
    assert (run / "graphon" / "estimate.md").exists() and (run / "graphon" / "ntk.json").exists()


@pytest.mark.parametrize("masks, extra, msg", [
    ({"a": torch.full((8, 8), 0.5)}, [], "not binary"),
    ({"a": torch.ones(8, dtype=torch.bool)}, [], "not 2-d"),
    ({"a": torch.ones(8, 8, dtype=torch.bool)}, ["--K", "9"], "larger than a side of layer 'a'"),
    ({"conv.weight": torch.ones(6, 3, 3, 3, dtype=torch.bool), "fc.weight": torch.ones(10, 6, dtype=torch.bool)},
     ["--K", "2", "--ntk", "--task", "digits-mlp"], "'conv.weight' is a 4-d mask"),
    ({"a": torch.ones(8, 8, dtype=torch.bool)}, ["--K", "2", "--ntk"], "pass --task"),
])
def test_estimate_bad_input_is_one_line_exit_2(tmp_path, capsys, masks, extra, msg) -> None:
    torch.save(masks, tmp_path / "m.pt")
    assert main(["graphon", "estimate", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_sweep_writes_distances_table_and_figures(tmp_path) -> None:
    out = tmp_path / "sw"
    assert main(["graphon", "sweep", "--task", "digits-mlp", "--pruner", "random,synflow",
                 "--pruner-arg", "synflow.iterations=3", "--sparsity", "0.8", "--widths", "16,32,64",
                 "--trials", "2", "--depth", "3", "--K", "4", "--out", str(out)]) == 0
    df = pd.read_csv(out / "sweep.csv")
    assert len(df) == 2 * 3 * 2                                # pruners x widths x hidden->hidden layers
    assert set(df["pruner"]) == {"random", "synflow(iterations=3)"} and (df["trials"] == 2).all()
    assert (df[df.width == 64]["distance"] == 0).all() and (df[df.width < 64]["distance"] > 0).all()
    # global random pruning keeps ~20 % of every layer
    assert (df[df.pruner == "random"]["density"] - 0.2).abs().max() < 0.05
    for f in ("convergence.png", "graphons.png", "sweep.md"):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize("args, msg", [
    (["--widths", "64,32"], "not strictly increasing"),
    (["--widths", "16,32", "--K", "32"], "larger than the narrowest width 16"),
    (["--widths", "16,x"], "not a comma-separated list"),
    (["--widths", "16,32", "--pruner", "imp"], "decides its masks during training"),
    (["--widths", "16,32", "--pruner-arg", "synflow.iterations=3"], "not in --pruner"),
    (["--widths", "16,32", "--pruner-arg", "random"], "PRUNER.KEY=VALUE"),
    (["--widths", "16,32", "--sparsity", "1.2"], "outside [0, 1)"),
    (["--widths", "16,32", "--task", "no-such-task"], "no-such-task"),
])
def test_sweep_bad_input_is_one_line_exit_2(tmp_path, capsys, args, msg) -> None:
    assert main(["graphon", "sweep", "--task", "digits-mlp", "--trials", "1", "--K", "4",
                 "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_ntk_writes_spectra_metrics_and_loss(tmp_path) -> None:
    out = tmp_path / "ntk"
    assert main(["graphon", "ntk", "--task", "digits-mlp", "--pruner", "random,snip", "--sparsities", "0.5,0.9",
                 "--width", "16", "--depth", "2", "--K", "4", "--samples", "16", "--train-steps", "5",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out / "ntk.csv")
    assert len(df) == 1 + 2 * 2                                 # dense + pruners x sparsities
    dense = df[df.pruner == "dense"].iloc[0]
    assert dense["density"] == 1.0 and np.isclose(dense["path_density"], 1.0)
    assert np.isfinite(df[["ntk_top5_energy", "ntk_effective_rank", "loss_mean"]].to_numpy()).all()
    assert (df[df.pruner != "dense"]["path_density"] < 1).all()  # pruning lowers the path density
    loss = pd.read_csv(out / "loss.csv")
    assert loss["step"].max() == 5
    for f in ("spectra.png", "ntk_metrics.png", "loss.png", "ntk.md"):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize("args, msg", [
    (["--sparsities", "0.5,1.5"], "outside [0, 1)"),
    (["--sparsities", "0.5", "--K", "32"], "larger than the width 16"),
    (["--sparsities", "0.5", "--train-steps", "-1"], "negative"),
    (["--sparsities", "0.5", "--pruner", "gmp"], "decides its masks during training"),
])
def test_ntk_bad_input_is_one_line_exit_2(tmp_path, capsys, args, msg) -> None:
    assert main(["graphon", "ntk", "--task", "digits-mlp", "--width", "16", "--depth", "2", "--samples", "8",
                 "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


MLP_TASKS = [n for n in __import__("benchmark.tasks", fromlist=["TASKS"]).TASKS.names()
             if __import__("benchmark.tasks", fromlist=["TASKS"]).TASKS.get(n).model == "mlp"]


@pytest.mark.parametrize("task", MLP_TASKS)
def test_estimate_with_defaults_works_on_every_builtin_mlp_task(tmp_path, capsys, task) -> None:
    """Issue 21 (5): the default K fits each layer (a 10-output readout gets 10 row cells) and is printed."""
    from benchmark.tasks import TASKS, build_model
    from pruners.masks import prunable_parameters

    torch.manual_seed(0)
    model = build_model(TASKS.get(task))
    g = torch.Generator().manual_seed(1)
    masks = Masks({n: torch.rand(p.shape, generator=g) < 0.2 for n, p in prunable_parameters(model).items()})
    run = tmp_path / "run"
    run.mkdir()
    masks.save(run / "masks.pt")
    (run / "spec.json").write_text(json.dumps({"task": task}))
    assert main(["graphon", "estimate", str(run)]) == 0
    out = capsys.readouterr().out
    df = pd.read_csv(run / "graphon" / "estimate.csv")
    readout = df.iloc[-1]
    assert (readout["K_out"], readout["K_in"]) == (min(64, readout["n_out"]), min(64, readout["n_in"]))
    assert readout["K_out"] < 64 and f"{readout['layer']} {readout['K_out']}x{readout['K_in']}" in out
    assert "K fitted per layer (min(64, side) on each side)" in out


def test_per_pixel_input_equals_the_cell_input_when_the_input_graphon_is_constant_per_cell() -> None:
    """K_in = d with W¹ repeated over each cell's features is the same step graphon as K_in cells."""
    from graphon.estimate import cell_of_position
    from graphon.ntk import graphon_ntk

    g = np.random.default_rng(0)
    d, k, k_in = 12, 3, 4
    w1 = g.uniform(0.2, 1.0, (k, k_in))
    w2 = g.uniform(0.2, 1.0, (k, k))
    x = g.normal(size=(9, d))
    per_pixel = w1[:, cell_of_position(d, k_in)]                 # (k, d): each feature its cell's value
    np.testing.assert_allclose(graphon_ntk([per_pixel, w2], x), graphon_ntk([w1, w2], x), rtol=1e-12, atol=1e-14)
    # and differs once the input graphon varies within a cell
    varied = per_pixel * g.uniform(0.5, 1.0, per_pixel.shape)
    assert np.abs(graphon_ntk([varied, w2], x) - graphon_ntk([w1, w2], x)).max() > 1e-3


def test_per_pixel_input_flag_of_graphon_estimate(tmp_path, capsys) -> None:
    masks = _mlp_masks()
    masks.save(tmp_path / "masks.pt")
    for flag, name in (([], "cells"), (["--per-pixel-input"], "pixels")):
        assert main(["graphon", "estimate", str(tmp_path / "masks.pt"), "--K", "4", "--out", str(tmp_path / name),
                     "--ntk", "--task", "digits-mlp", "--samples", "16", *flag]) == 0
    a, b = (json.loads((tmp_path / n / "ntk.json").read_text()) for n in ("cells", "pixels"))
    assert a.keys() == b.keys() and a != b
