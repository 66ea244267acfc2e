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


# ----------------------------------------------------------------------------------------------------
# Multi-method figures of the suite's experiments (benchmark.analysis)
# ----------------------------------------------------------------------------------------------------
def _panels(n: int, ncols: int, w: float = 3.6, h: float = 3.0) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(w * ncols, h * nrows))
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]


def plot_convergence_panels(df: pd.DataFrame, path: str | os.PathLike, *, by: str = "pruner",
                            title: str | None = None, ncols: int = 5) -> Path:
    """Distance to the widest width vs width (log–log), one panel per value of ``by``, one line per layer
    (and per ``depth`` when the table holds several).  Shared y axis, so panels compare directly."""
    need = {"width", "layer", "distance", by}
    if not need <= set(df.columns):
        raise ConfigError(f"the sweep table lacks columns {sorted(need - set(df.columns))}; pass "
                          "benchmark.analysis.run_sweep's table")
    keys = list(dict.fromkeys(df[by]))
    fig, axes = _panels(len(keys), ncols)
    widest = df["width"].max()
    sub = df[(df["width"] < widest) & (df["distance"] > 0)]
    lo, hi = (sub["distance"].min(), sub["distance"].max()) if len(sub) else (1e-3, 1.0)
    for ax, key in zip(axes, keys):
        g = sub[sub[by] == key]
        group_cols = ["depth", "layer"] if "depth" in g.columns and g["depth"].nunique() > 1 else ["layer"]
        for gk, gg in g.groupby(group_cols, sort=False):
            gg = gg.sort_values("width")
            lab = "/".join(str(x) for x in (gk if isinstance(gk, tuple) else (gk,)))
            ax.plot(gg["width"], gg["distance"], marker="o", ms=3, lw=1, label=lab)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.5, hi * 1.5)
        ax.set_title(str(key), fontsize=9)
        ax.set_xlabel("width", fontsize=8)
        ax.set_ylabel(f"Frobenius distance to width {widest}", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=5, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_graphon_grid(estimates: Mapping[str, Mapping[str, np.ndarray]], path: str | os.PathLike, *,
                      title: str | None = None, cmap: str = "viridis") -> Path:
    """Heatmaps of K × K estimates: one row per method, one column per layer (values 0..1)."""
    if not estimates:
        raise ConfigError("no graphon estimates to plot; pass {method: {layer: matrix}}")
    rows = list(estimates)
    ncols = max(len(estimates[r]) for r in rows)
    fig = Figure(figsize=(2.4 * ncols + 0.8, 2.3 * len(rows)))
    im = None
    for i, r in enumerate(rows):
        for j, (layer, mat) in enumerate(estimates[r].items()):
            ax = fig.add_subplot(len(rows), ncols, i * ncols + j + 1)
            im = ax.imshow(np.asarray(mat), vmin=0.0, vmax=1.0, cmap=cmap, extent=(0, 1, 1, 0),
                           interpolation="nearest")
            ax.set_title(f"{r}: {layer}", fontsize=7)
            ax.tick_params(labelsize=5)
    if im is not None:
        fig.colorbar(im, ax=fig.axes, shrink=0.8, label="connection density")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_spectra_panels(spectra: Mapping[str, Mapping[str, np.ndarray]], path: str | os.PathLike, *,
                        title: str | None = None, normalise: bool = True) -> Path:
    """Eigenvalue decay, one panel per method, one line per label (e.g. sparsity).  With ``normalise``
    every spectrum is divided by its trace (the scale-free shape; λ₁ scales with the path density)."""
    if not spectra:
        raise ConfigError("no spectra to plot; pass {method: {label: eigenvalues}}")
    keys = list(spectra)
    fig, axes = _panels(len(keys), 4)
    for ax, key in zip(axes, keys):
        for label, lam in spectra[key].items():
            lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
            if normalise and lam.sum() > 0:
                lam = lam / lam.sum()
            k = np.arange(1, lam.shape[0] + 1)
            keep = lam > 0
            ax.plot(k[keep], lam[keep], lw=1, label=str(label))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(str(key), fontsize=9)
        ax.set_xlabel("k", fontsize=8)
        ax.set_ylabel("λ_k / trace" if normalise else "λ_k", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_ntk_metrics(df: pd.DataFrame, path: str | os.PathLike, *,
                     metrics: tuple[str, ...] = ("ntk_top5_energy", "ntk_effective_rank", "ntk_decay_rate",
                                                 "path_density"),
                     title: str | None = None) -> Path:
    """Spectrum metrics against sparsity (mean over trials), one line per pruner; the dense network
    (sparsity 0, pruner ``dense``) as a dashed horizontal line."""
    need = {"pruner", "sparsity", *metrics}
    if not need <= set(df.columns):
        raise ConfigError(f"the NTK table lacks columns {sorted(need - set(df.columns))}")
    fig, axes = _panels(len(metrics), len(metrics), 3.4, 2.9)
    mean = df.groupby(["pruner", "sparsity"], sort=False)[list(metrics)].mean().reset_index()
    for ax, m in zip(axes, metrics):
        for pruner, g in mean.groupby("pruner", sort=False):
            if pruner == "dense":
                ax.axhline(float(g[m].iloc[0]), color="k", ls="--", lw=1, label="dense")
                continue
            g = g.sort_values("sparsity")
            ax.plot(100 * g["sparsity"], g[m], marker="o", ms=3, label=str(pruner))
        if m == "path_density":
            ax.set_yscale("log")
        ax.set_xlabel("sparsity (%)", fontsize=8)
        ax.set_title(m.replace("ntk_", ""), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_loss_curves(curves: Mapping[str, Mapping[float, np.ndarray]], path: str | os.PathLike, *,
                     title: str | None = None, smooth: int = 10) -> Path:
    """Training loss per step, one panel per pruner, one line per sparsity (moving average over ``smooth``
    steps); the ``dense`` entry, if present, is drawn dashed in every panel."""
    if not curves:
        raise ConfigError("no loss curves to plot")
    dense = curves.get("dense")
    keys = [k for k in curves if k != "dense"] or ["dense"]
    fig, axes = _panels(len(keys), 4)

    def ma(c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, dtype=np.float64)
        if smooth <= 1 or c.shape[0] < smooth:
            return c
        return np.convolve(c, np.ones(smooth) / smooth, mode="valid")

    for ax, key in zip(axes, keys):
        for s, c in sorted(curves[key].items()):
            y = ma(c)
            ax.plot(np.arange(1, y.shape[0] + 1) + (smooth - 1 if smooth > 1 else 0), y, lw=1,
                    label=f"{100 * s:g}%")
        if dense is not None and key != "dense":
            for c in dense.values():
                y = ma(c)
                ax.plot(np.arange(1, y.shape[0] + 1) + (smooth - 1 if smooth > 1 else 0), y, "k--", lw=1,
                        label="dense")
        ax.set_yscale("log")
        ax.set_title(str(key), fontsize=9)
        ax.set_xlabel("Adam step", fontsize=8)
        ax.set_ylabel(f"train loss (moving avg. {smooth})", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
