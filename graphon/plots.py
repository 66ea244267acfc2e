"""Pictures of the graphon analysis (matplotlib, Agg canvas; no display needed).

Each function takes data and an output path, writes one figure (format from the suffix, e.g. ``.png``,
``.svg``, ``.pdf``) and returns the path.  Figures are built with ``matplotlib.figure.Figure`` directly, so
the global pyplot backend is never touched.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from graphon.estimate import GraphonEstimate
from pruners.registry import ConfigError


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    return p


def plot_graphons(estimates: Mapping[str, GraphonEstimate | np.ndarray], path: str | os.PathLike, *,
                  ncols: int = 4, title: str | None = None, cmap: str = "viridis") -> Path:
    """Heatmaps of K × K graphon estimates, one subplot per layer (values 0..1, shared colour scale).

    Axes: ``u`` = output neurons sorted by in-degree (descending, top = densest), ``v`` = input neurons
    sorted by out-degree (or natural order for ``keep_input_order``).
    """
    if not estimates:
        raise ConfigError("no graphon estimates to plot; pass {layer: estimate}")
    names = list(estimates)
    ncols = max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 3.0 * nrows))
    im = None
    for i, name in enumerate(names):
        e = estimates[name]
        mat = e.matrix if isinstance(e, GraphonEstimate) else np.asarray(e)
        ax = fig.add_subplot(nrows, ncols, i + 1)
        im = ax.imshow(mat, vmin=0.0, vmax=1.0, cmap=cmap, extent=(0, 1, 1, 0), interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("v (input)", fontsize=7)
        ax.set_ylabel("u (output)", fontsize=7)
        ax.tick_params(labelsize=6)
    if im is not None:
        fig.colorbar(im, ax=fig.axes, shrink=0.8, label="connection density")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_convergence(df: pd.DataFrame, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Distance to the widest width's estimate against width, log–log, one line per layer.

    ``df`` is :func:`graphon.sweep.convergence_sweep`'s output; the widest width (distance 0) is omitted.
    """
    need = {"width", "layer", "distance"}
    if not need <= set(df.columns):
        raise ConfigError(f"the sweep table lacks columns {sorted(need - set(df.columns))}; pass the "
                          "DataFrame returned by convergence_sweep")
    fig = Figure(figsize=(5, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    widest = df["width"].max()
    for layer, g in df[df["width"] < widest].groupby("layer", sort=False):
        g = g.sort_values("width")
        ax.plot(g["width"], g["distance"], marker="o", label=str(layer))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel(f"distance to width {widest}")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_spectrum(eigenvalues: Mapping[str, np.ndarray] | np.ndarray, path: str | os.PathLike, *,
                  title: str | None = None) -> Path:
    """Eigenvalue decay λ_k against k, log–log (one line per entry of a mapping)."""
    series = {"Θ": eigenvalues} if not isinstance(eigenvalues, Mapping) else dict(eigenvalues)
    if not series:
        raise ConfigError("no eigenvalues to plot")
    fig = Figure(figsize=(5, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for label, lam in series.items():
        lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
        k = np.arange(1, lam.shape[0] + 1)
        keep = lam > 0
        ax.plot(k[keep], lam[keep], label=str(label))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("λ_k")
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return _save(fig, path)
