"""Graphon analysis of sparse masks (Pham et al., *The Graphon Limit Hypothesis*, NeurIPS 2025).

Public API (see docs/graphon.md):

* :func:`estimate` — mask → K × K step graphon (:class:`GraphonEstimate`).
* :func:`frobenius`, :func:`cut_norm`, :func:`cut_distance`, :func:`distance_to_constant` — distances.
* :func:`convergence_sweep` — distances to the widest width over widths and trials.
* :func:`graphon_ntk`, :func:`empirical_ntk`, :func:`sample_masked_mlp`, :func:`graphons_from_masks`.
* :func:`spectrum_metrics` — NTK eigen-spectrum metrics.
* :func:`summarize_masks` — per-run summary with flat keys for the results table.
* :func:`plot_graphons`, :func:`plot_convergence`, :func:`plot_spectrum` — pictures.
"""
from graphon.distance import cut_distance, cut_norm, distance, distance_to_constant, frobenius
from graphon.estimate import GraphonEstimate, cell_bounds, conv_connectivity, estimate
from graphon.ntk import (MaskedMLP, dense_ntk, empirical_ntk, graphon_ntk, graphons_from_masks, masks_ntk,
                         mlp_coverage, sample_masked_mlp, sample_masks)
from graphon.plots import plot_convergence, plot_graphons, plot_spectrum
from graphon.spectrum import SpectrumMetrics, eigenvalues, spectrum_metrics
from graphon.summary import layer_estimates, summarize_masks
from graphon.sweep import convergence_sweep

__all__ = [
    "GraphonEstimate", "MaskedMLP", "SpectrumMetrics", "cell_bounds", "conv_connectivity", "convergence_sweep",
    "cut_distance", "cut_norm", "dense_ntk", "distance", "distance_to_constant", "eigenvalues", "empirical_ntk",
    "estimate", "frobenius", "graphon_ntk", "graphons_from_masks", "layer_estimates", "masks_ntk", "mlp_coverage",
    "plot_convergence", "plot_graphons", "plot_spectrum", "sample_masked_mlp", "sample_masks",
    "spectrum_metrics", "summarize_masks",
]
