"""Deterministic matplotlib figures for the leaderboard site (PNG bytes).

Every figure is drawn on a fresh ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot state, no
global backend change) under fixed rc settings, and saved with ``metadata={'Software': None}`` so the
same inputs give byte-identical PNG files (matplotlib writes no date into PNGs; the Software key is the
only varying chunk).  Math-text parsing is off: a method named ``$x$`` is drawn literally.
"""
from __future__ import annotations

import io
import math
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

PLOT_VERSION = "3"  # bump when a figure's look changes (invalidates the site's image cache)

RC = {
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.dpi": 100,
    "figure.dpi": 100,
    "svg.hashsalt": "sparsebench",
    "path.simplify": True,
}
HIGHLIGHT = "#c0392b"
FAINT = "#7f8c8d"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _figure(w: float, h: float, constrained: bool = True) -> Figure:
    """A figure; simple one-axis plots use fixed margins (half the drawing time of a constrained layout)."""
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained" if constrained else None)
    if not constrained:
        fig.subplots_adjust(left=0.11, right=0.97, bottom=0.14, top=0.9)
    return fig


def _decade_label(value: float, _pos: int | None = None) -> str:
    """Plain-text label of a log-axis tick: ``1e-3``, ``1``, ``1e4`` (math text is off, see RC)."""
    if value <= 0 or not math.isfinite(value):
        return ""
    exp = math.log10(value)
    if abs(exp - round(exp)) > 1e-9:
        return f"{value:.3g}"
    k = int(round(exp))
    return {0: "1", 1: "10"}.get(k, f"1e{k}")


def plain_log_axis(axis) -> None:
    """Log-scale ``axis`` (``ax.yaxis`` / ``ax.xaxis``) with decade ticks labelled in plain text.

    matplotlib's default log formatter writes math text (``$\\mathdefault{10^{-2}}$``), which the RC's
    ``text.parse_math = False`` would show verbatim."""
    axis.set_major_locator(LogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(_decade_label))
    axis.set_minor_formatter(NullFormatter())


def _finite(xs: Sequence[float]) -> bool:
    return any(x is not None and math.isfinite(x) for x in xs)


def accuracy_vs_sparsity(series: Sequence[dict], highlight: str, title: str,
                         dense: float | None = None, published: Sequence[dict] = ()) -> bytes:
    """Top-1 vs target sparsity: every method faint, ``highlight`` bold with ± std error bars.

    Args:
        series: ``{"method", "x" (sparsity %), "y" (top-1 mean %), "err" (std)}`` per method, x ascending.
        highlight: the method drawn bold.
        dense: the dense mean, drawn as a dashed line.
        published: ``{"x", "y", "source"}`` published numbers, drawn as black crosses.
    """
    with matplotlib.rc_context(RC):
        fig = _figure(6.0, 3.6, constrained=False)
        ax = fig.add_subplot()
        others = False
        for s in series:
            if s["method"] != highlight:
                ax.plot(s["x"], s["y"], "-o", color=FAINT, alpha=0.35, lw=1, ms=3,
                        label=None if others else "other methods, same task")
                others = True
        for s in series:
            if s["method"] == highlight:
                ax.errorbar(s["x"], s["y"], yerr=s["err"], fmt="-o", color=HIGHLIGHT, lw=2.5, ms=6,
                            capsize=3, label=highlight, zorder=5)
        if dense is not None and math.isfinite(dense):
            ax.axhline(dense, ls="--", color="black", lw=1, label=f"dense {dense:.2f}")
        if published:
            ax.plot([p["x"] for p in published], [p["y"] for p in published], "x", color="black", ms=8,
                    mew=2, label="published", zorder=6)
        ax.set_xlabel("target sparsity (%)")
        ax.set_ylabel("final top-1 (%)")
        ax.set_title(title)
        ax.legend(loc="lower left", fontsize=8)
        return _png(fig)


def task_accuracy(series: Sequence[dict], title: str, dense: float | None = None) -> bytes:
    """Top-1 vs target sparsity for every method of a task: the mean over seeds as a line, its 95 %
    t-interval as a band (none with one seed), the dense mean dashed.

    Args:
        series: ``{"method", "x" (sparsity %), "y" (mean %), "lo", "hi" (interval, NaN without one)}``.
    """
    with matplotlib.rc_context(RC):
        fig = _figure(7.0, 4.2, constrained=False)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["tab20" if len(series) > 10 else "tab10"]
        for i, s in enumerate(series):
            color = cmap(i % cmap.N)
            ax.plot(s["x"], s["y"], "-o", ms=3, lw=1.4, color=color, label=s["method"])
            lo, hi = np.asarray(s["lo"], dtype=float), np.asarray(s["hi"], dtype=float)
            if np.isfinite(lo).any():
                ax.fill_between(s["x"], lo, hi, color=color, alpha=0.15, lw=0)
        if dense is not None and math.isfinite(dense):
            ax.axhline(dense, ls="--", color="black", lw=1, label=f"dense {dense:.2f}")
        ax.set_xlabel("target sparsity (%)")
        ax.set_ylabel("final top-1 (%), band: 95 % CI")
        ax.set_title(title)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
        fig.subplots_adjust(right=0.68)
        return _png(fig)


def sign_flips(curves: Sequence[dict], title: str) -> bytes:
    """Kept weights whose sign differs from initialisation, per epoch; one line per sparsity.

    Args:
        curves: ``{"label", "epoch": [...], "flips": [...]}`` (means over seeds).
    """
    with matplotlib.rc_context(RC):
        fig = _figure(6.0, 3.2, constrained=False)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["viridis"]
        markers = "osD^vP*X"
        for i, c in enumerate(curves):  # distinct markers and dash patterns: equal curves stay visible
            ax.plot(c["epoch"], c["flips"], ls=("-", "--", "-.", ":")[i % 4], marker=markers[i % len(markers)],
                    ms=4 + 1.5 * ((len(curves) - 1 - i) % 3), mfc="none", lw=1.5,
                    color=cmap(i / max(1, len(curves) - 1)), label=c["label"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("sign flips (weights)")
        ax.set_title(title)
        ax.legend(fontsize=8)
        return _png(fig)


def layer_heatmaps(layers: Sequence[str], columns: Sequence[str], stats: dict[str, np.ndarray], title: str) -> bytes:
    """One heat map per graphon statistic: rows = layers, columns = sparsities (NaN cells blank)."""
    names = list(stats)
    with matplotlib.rc_context({**RC, "axes.grid": False}):
        fig = _figure(min(3.0 * len(names), 12.0), 0.9 + 0.35 * max(len(layers), 2))
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names):
            data = np.asarray(stats[name], dtype=float)
            im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="magma", interpolation="nearest",
                           vmin=0.0, vmax=max(1e-12, float(np.nanmax(data))) if np.isfinite(data).any() else 1.0)
            ax.set_title(name, fontsize=9)
            ax.set_xticks(range(len(columns)), list(columns), fontsize=7)
            ax.set_yticks(range(len(layers)), list(layers) if ax is axes[0] else [""] * len(layers), fontsize=7)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle(title, fontsize=10)
        return _png(fig)


def graphon_matrix(matrix: np.ndarray, title: str) -> bytes:
    """A step graphon (K × K cell densities in [0, 1]) as an image."""
    with matplotlib.rc_context({**RC, "axes.grid": False}):
        fig = _figure(3.4, 3.0)
        ax = fig.add_subplot()
        im = ax.imshow(np.asarray(matrix, dtype=float), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
        return _png(fig)


def ntk_spectrum(spectra: Sequence[dict], title: str) -> bytes:
    """Eigenvalues in decreasing order (log scale), one line per label: ``{"label", "eig": [...]}``."""
    with matplotlib.rc_context(RC):
        fig = _figure(6.0, 3.2, constrained=False)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["viridis"]
        for i, s in enumerate(spectra):
            eig = np.asarray(s["eig"], dtype=float)
            eig = eig[eig > 0]
            ax.plot(np.arange(1, len(eig) + 1), eig, "-", color=cmap(i / max(1, len(spectra) - 1)), label=s["label"])
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_xlabel("index")
        ax.set_ylabel("NTK eigenvalue")
        ax.set_title(title)
        ax.legend(fontsize=8)
        return _png(fig)


def pairs_heatmap(rows: Sequence[str], cols: Sequence[str], gap: np.ndarray, title: str,
                  labels: Sequence[Sequence[str]] | None = None) -> bytes:
    """Paired top-1 gain of pruner + reparam over the pruner's plain run: diverging colours centred at 0,
    ``labels`` (e.g. ``+0.33 [+0.26, +0.40]*``) or the values printed in the cells."""
    data = np.asarray(gap, dtype=float)
    lim = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    lim = max(lim, 0.5)  # all-zero or tiny gaps: a ±0.5 pp scale, not a 1e-9 one
    with matplotlib.rc_context({**RC, "axes.grid": False}):
        fig = _figure(1.6 + (2.0 if labels is not None else 1.1) * max(len(cols), 2), 1.0 + 0.4 * max(len(rows), 2))
        ax = fig.add_subplot()
        im = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                if math.isfinite(data[i, j]):
                    text = labels[i][j] if labels is not None else f"{data[i, j]:+.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7 if labels is not None else 8)
        ax.set_xticks(range(len(cols)), list(cols), rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8, label="Δ top-1 (pp)")
        return _png(fig)
