"""Per-run graphon summary for the results table (DESIGN.md, "Graphon analysis").

:func:`summarize_masks` turns a run's masks into per-layer graphon statistics and flat aggregate keys.

* Every 2-d mask (Linear) is a bipartite graph ``(n_out, n_in)``.  A conv mask ``(c_out, c_in, *kernel)``
  is summarised as the connectivity between channels: ``M[o, i] = 1`` iff any kernel position of the
  filter slice ``(o, i)`` is kept (:func:`graphon.estimate.conv_connectivity`).  Masks with fewer than two
  dimensions (biases, norms) are skipped.
* Per layer (paper's estimator, both sides degree-sorted, ``K`` capped at each side): ``heterogeneity``
  (std of the cells), ``distance_to_constant`` (Frobenius, :func:`graphon.distance.distance_to_constant`
  with the exact density), ``dead_share`` (share of the layer's ``n_out + n_in`` neurons with no
  connection on this layer), ``dead_outputs``, ``dead_inputs``, ``density``.
* Flat aggregate keys (means over the summarised layers): ``graphon_heterogeneity_mean``,
  ``graphon_distance_to_constant_mean``, ``graphon_dead_share_mean``, ``graphon_layers``; for a plain MLP
  also ``graphon_dead_neuron_share`` (hidden neurons with no input or no output, through the network).
* With ``ntk_batch`` (an ``(n, d)`` batch) and masks forming a plain MLP (:func:`graphon.ntk.mlp_coverage`):
  the graphon NTK of aligned estimates (:func:`graphon.ntk.graphons_from_masks`, last mask = readout) and
  its spectrum metrics ``ntk_decay_rate``, ``ntk_effective_rank``, ``ntk_spectral_gap``,
  ``ntk_top5_energy``, ``ntk_lambda_max`` (:mod:`graphon.spectrum`); the eigenvalues go under
  ``"ntk_eigenvalues"`` for plots.  The NTK assumes a bias-free ReLU MLP in NTK parameterisation whatever
  the trained model's biases were: it is a property of the masks.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from graphon.distance import distance_to_constant
from graphon.estimate import GraphonEstimate, as_mask_matrix, conv_connectivity, estimate
from graphon.ntk import masks_ntk, mlp_coverage
from graphon.spectrum import spectrum_metrics
from pruners.registry import ConfigError


def layer_estimates(masks: Mapping[str, torch.Tensor], K: int = 64, *,
                    method: str = "sas") -> dict[str, GraphonEstimate]:
    """Graphon estimates of every ≥ 2-d mask (conv masks as channel connectivity), K capped per side."""
    out: dict[str, GraphonEstimate] = {}
    for name, m in masks.items():
        if not isinstance(m, torch.Tensor):
            raise ConfigError(f"mask {name!r} is a {type(m).__name__}, not a tensor; pass bool tensors")
        if m.dim() < 2:
            continue
        mat = as_mask_matrix(conv_connectivity(m.detach().cpu()), name=f"mask {name!r}")
        k = (min(K, mat.shape[0]), min(K, mat.shape[1]))
        out[name] = estimate(mat, k, method=method, name=f"mask {name!r}")  # type: ignore[arg-type]
    return out


def summarize_masks(masks: Mapping[str, torch.Tensor], K: int = 64, ntk_batch: torch.Tensor | None = None,
                    *, method: str = "sas", include_matrices: bool = False) -> dict[str, Any]:
    """Graphon (and optionally NTK) summary of one run's masks.

    Args:
        masks: parameter name → bool mask, in module order (``pruners.masks.Masks`` works).
        K: cells per side (capped at each layer's sides).
        ntk_batch: ``(n, d)`` batch for the graphon NTK; requires a plain MLP.
        method: graphon estimator for the per-layer statistics.
        include_matrices: also store each layer's K × K estimate as ``layers[name]["matrix"]`` (nested
            lists rounded to 4 decimals; for pictures — about 30 KB of JSON per 64 × 64 layer).

    Returns:
        ``{"layers": {name: {...}}, "graphon_*": float, ..., "ntk_*": float, "ntk_eigenvalues": list}``.

    Raises:
        ConfigError: a mask that is not binary, K < 1, or an NTK batch for masks that are not a plain MLP
        (the message says which layer and why).
    """
    if K < 1:
        raise ConfigError(f"K={K}; use a positive number of cells (default 64)")
    ests = layer_estimates(masks, K, method=method)
    layers: dict[str, dict[str, Any]] = {}
    for name, e in ests.items():
        layers[name] = {
            "kind": "conv" if masks[name].dim() > 2 else "linear",
            "shape": list(masks[name].shape),
            "K": list(e.K),
            "density": e.density,
            "heterogeneity": e.heterogeneity,
            "distance_to_constant": distance_to_constant(e.matrix, row_sizes=e.row_sizes,
                                                         col_sizes=e.col_sizes),
            "dead_share": e.dead_share,
            "dead_outputs": e.dead_outputs,
            "dead_inputs": e.dead_inputs,
        }
        if include_matrices:
            layers[name]["matrix"] = np.round(e.matrix, 4).tolist()
    out: dict[str, Any] = {"layers": layers, "graphon_layers": len(layers)}
    for key in ("heterogeneity", "distance_to_constant", "dead_share"):
        vals = [v[key] for v in layers.values()]
        out[f"graphon_{key}_mean"] = float(np.mean(vals)) if vals else float("nan")

    items = [(n, m.detach().cpu()) for n, m in masks.items() if isinstance(m, torch.Tensor) and m.dim() >= 2]
    if mlp_coverage(items) is None:
        dead = total = 0
        for (_, m), (_, nxt) in zip(items, items[1:]):
            no_in = ~m.bool().any(1)
            no_out = ~nxt.bool().any(0)
            dead += int((no_in | no_out).sum())
            total += m.shape[0]
        out["graphon_dead_neuron_share"] = dead / total if total else float("nan")

    if ntk_batch is not None:
        x = torch.as_tensor(ntk_batch)
        if x.dim() != 2:
            x = x.reshape(x.shape[0], -1)
        try:
            theta = masks_ntk(dict(items), x, K)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; call summarize_masks without ntk_batch") from None
        metrics = spectrum_metrics(theta)
        out.update(metrics.as_dict("ntk_"))
        out["ntk_eigenvalues"] = np.linalg.eigvalsh(theta)[::-1].tolist()
    return out
