"""Convergence of mask graphons across widths (Graphon Limit Hypothesis, arXiv 2510.17515, §4, Fig. 2).

``mask_fn(width, trial)`` builds (e.g. with a pruner) the hidden→hidden masks of one network; for every
width we estimate each layer's graphon (:func:`graphon.estimate.estimate`), average the K × K estimates
over the trials, and report the distance of each width's average to the widest width's average — the
paper's evidence that the masks converge to one graphon as width grows.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from graphon.distance import Metric, distance, distance_to_constant
from graphon.estimate import Method, as_mask_matrix, estimate
from pruners.registry import ConfigError

MaskFn = Callable[[int, int], Mapping[str, torch.Tensor]]
COLUMNS = ["width", "layer", "distance", "distance_to_constant", "heterogeneity", "dead_share", "density",
           "trials"]


def _validate(widths: Sequence[int], trials: int, K: int) -> list[int]:
    ws = [int(w) for w in widths]
    if len(ws) < 2:
        raise ConfigError(f"widths={list(widths)} has fewer than two entries; a convergence sweep compares "
                          "several widths, e.g. 100,500,1000,2000")
    if any(b <= a for a, b in zip(ws, ws[1:])):
        raise ConfigError(f"widths={ws} are not strictly increasing; list them from narrowest to widest "
                          "without repeats")
    if trials < 1:
        raise ConfigError(f"trials={trials}; use at least 1 trial per width")
    if K < 1:
        raise ConfigError(f"K={K}; use a positive number of cells (default 64)")
    if ws[0] < K:
        raise ConfigError(f"K={K} is larger than the narrowest width {ws[0]}; choose K <= {ws[0]} or drop "
                          "the narrow widths")
    return ws


def convergence_sweep(mask_fn: MaskFn, widths: Sequence[int], trials: int = 10, K: int = 64, *,
                      method: Method = "sas", metric: Metric = "frobenius",
                      return_estimates: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """Distance of each width's trial-averaged graphon estimate to the widest one, per layer.

    Args:
        mask_fn: ``mask_fn(width, trial) -> {layer_name: 2-d bool mask}`` (hidden→hidden layers only);
            every width must return the same layer names.
        widths: strictly increasing widths; the last is the reference.
        trials: masks per width (the K × K estimates are averaged over them).
        K: cells per side; must not exceed any side of any mask.
        method: estimator (``"sas"`` = the paper's).
        metric: ``"frobenius"`` (the paper's proxy) or ``"cut"``.
        return_estimates: also return ``{(width, layer): averaged K × K matrix}``.

    Returns:
        A DataFrame with columns ``width, layer, distance`` (to the widest width's estimate; 0 for the
        widest), ``distance_to_constant`` (same metric, constant graphon of the same density),
        ``heterogeneity`` (std of the averaged cells), ``dead_share`` (mean over trials of the layer's
        share of neurons without input or without output), ``density``, ``trials``.

    Raises:
        ConfigError: widths not strictly increasing, K larger than a side, a mask not 2-d or not binary,
        layer names that change with the width.
    """
    ws = _validate(widths, trials, K)
    averages: dict[tuple[int, str], np.ndarray] = {}
    stats: dict[tuple[int, str], dict[str, float]] = {}
    layer_names: list[str] | None = None
    for width in ws:
        for trial in range(trials):
            masks = mask_fn(width, trial)
            names = list(masks)
            if not names:
                raise ConfigError(f"mask_fn({width}, {trial}) returned no layers; return the hidden->hidden "
                                  "masks as {name: tensor}")
            if layer_names is None:
                layer_names = names
            elif sorted(names) != sorted(layer_names):
                raise ConfigError(f"mask_fn({width}, {trial}) returned layers {names} but earlier calls "
                                  f"returned {layer_names}; return the same layers at every width")
            for name in names:
                m = as_mask_matrix(masks[name], name=f"mask {name!r} at width {width}")
                if K > min(m.shape):
                    raise ConfigError(f"K={K} is larger than a side of mask {name!r} at width {width} "
                                      f"(shape {tuple(m.shape)}); choose K <= {min(m.shape)}")
                est = estimate(m, K, method=method, name=f"mask {name!r}")
                key = (width, name)
                averages[key] = averages.get(key, 0.0) + est.matrix / trials
                st = stats.setdefault(key, {"dead_share": 0.0, "density": 0.0})
                st["dead_share"] += est.dead_share / trials
                st["density"] += est.density / trials
    assert layer_names is not None
    rows = []
    widest = ws[-1]
    for width in ws:
        for name in layer_names:
            a = averages[(width, name)]
            rows.append({
                "width": width,
                "layer": name,
                "distance": distance(a, averages[(widest, name)], metric),
                "distance_to_constant": distance_to_constant(a, metric),
                "heterogeneity": float(a.std()),
                "dead_share": stats[(width, name)]["dead_share"],
                "density": stats[(width, name)]["density"],
                "trials": trials,
            })
    df = pd.DataFrame(rows, columns=COLUMNS)
    return (df, averages) if return_estimates else df
