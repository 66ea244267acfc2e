"""Graphon neural tangent kernel of a bias-free ReLU MLP (Pham et al., NeurIPS 2025, arXiv 2510.17515, §5).

Architecture and parameterisation (the only one covered)
--------------------------------------------------------
Bias-free ReLU MLP with ``L`` masked layers and a readout, in NTK parameterisation (Jacot et al. 2018):

    h¹ = (M¹ ⊙ A¹) x / sqrt(d),   h^{l+1} = (M^{l+1} ⊙ A^{l+1}) relu(h^l) / sqrt(n_l),   f = a · relu(h^L) / sqrt(n_L)

with all ``A``, ``a`` i.i.d. N(0, 1) and the normalisation by the *full* fan-in (``d`` or ``n_l``), not by the
masked fan-in.  ``M^l`` has graphon ``W^l``; the readout ``a`` is dense (optionally thinned with a per-cell
keep-probability ``output_density``, the column density of a masked readout averaged over outputs).

Recursion implemented (PAPERS.md §8, with u, u' ∈ [0,1] positions in consecutive layers)
----------------------------------------------------------------------------------------
    Σ̃¹(u; x, x')   = (1/d) Σ_j W¹(u, v_j) x_j x'_j,          v_j = position of input feature j
    Σ^l(u), Σ̇^l(u) = E[relu(a) relu(b)], E[relu'(a) relu'(b)]  for (a, b) ~ N(0, [[Σ̃^l(u;x,x), Σ̃^l(u;x,x')],
                                                                                  [Σ̃^l(u;x,x'), Σ̃^l(u;x',x')]])
    Σ̃^{l+1}(u')    = ∫ W^{l+1}(u', u) Σ^l(u) du                  (l = 1..L−1),   Σ̃^{L+1} = ∫ w_out(u) Σ^L(u) du
    G^{L+1} = 1,    G^l(u) = Σ̇^l(u) ∫ W^{l+1}(u', u) G^{l+1}(u') du'   (W^{L+1}(·, u) := w_out(u))
    Θ(x, x')        = Σ_{l=1}^{L+1} ∫ G^l(u) Σ̃^l(u) du

The ReLU expectations are the closed-form arc-cosine kernels (Cho & Saul 2009, with the 1/2 of the ReLU
variance kept, i.e. no He factor 2): with ``s = sqrt(Σ̃(x,x) Σ̃(x',x'))`` and ``cos θ = Σ̃(x,x')/s``,

    Σ  = s (sin θ + (π − θ) cos θ) / (2π),        Σ̇ = (π − θ) / (2π).

Where ``s = 0`` (a position with no live input) we set ``Σ = Σ̇ = 0`` (as torch's ``relu'(0) = 0``).

For K-block step graphons every integral is an exact K-point sum ``(1/K) Σ_c``; the input side of ``W¹`` is
evaluated at the input features: feature ``j`` belongs to input cell ``c`` of the near-equal partition of
``range(d)`` into ``K_in`` cells (:func:`graphon.estimate.cell_bounds`, the same as ``estimate(...,
keep_input_order=True)``), so ``Σ̃¹(u) = Σ_c W¹(u, c) · (1/d) Σ_{j ∈ c} x_j x'_j`` exactly.  We evaluate the
backward sum in its equivalent forward form (Jacot et al. 2018, Thm. 1):
``Θ̃¹ = Σ̃¹``, ``Θ̃^{l+1}(u') = Σ̃^{l+1}(u') + ∫ W^{l+1}(u', u) Σ̇^l(u) Θ̃^l(u) du``, ``Θ = Θ̃^{L+1}`` — the
tests check it against the backward sum written out literally.

Consequences (tested): a constant graphon ``c`` on all ``L`` masked layers (input layer included, readout
dense) gives ``Θ = c^L Θ_dense`` exactly (ReLU is 1-homogeneous, Σ̇ is scale-free).  More generally, when
``W¹(u, v)`` does not depend on ``u`` (e.g. a constant or dense input layer), every ``Σ̃^l(u)`` is a scalar
multiple of the dense one and ``Θ = P · Θ_dense`` with ``P = ∫ g(u) s(u) du`` the path density, the same
for every layer; scale-free spectrum metrics then do not depend on the hidden-layer graphons at all.

Cost: ``O(L·K·n²)`` memory-bound elementwise work plus ``O(L·K²·n²)`` matmul flops for ``n`` inputs.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from graphon.estimate import cell_of_position, estimate
from pruners.registry import ConfigError

ArrayLike = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------------------------------
# Arc-cosine expectations
# ----------------------------------------------------------------------------------------------------
def _relu_chunk(cov: torch.Tensor, s: torch.Tensor, on_diag: torch.Tensor | None,
                dead: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Arc-cosine expectations for a chunk of input pairs, in place.

    Args:
        cov: ``(K, B)`` covariances ``Σ̃(u; x_a, x_b)`` of B input pairs at K positions; overwritten with Σ.
        s: ``(K, B)`` products ``sqrt(Σ̃(u; x_a, x_a) Σ̃(u; x_b, x_b))``.
        on_diag: indices of the chunk's pairs with ``a = b`` (θ = 0 exactly there: arccos is
            ill-conditioned at 1, and rounding would otherwise cost ~1e-8 relative accuracy).
        dead: whether some ``s`` is 0 (a position without live input): Σ = Σ̇ = 0 there.

    Returns:
        ``(Σ, Σ̇)`` (``Σ`` is ``cov``).
    """
    cos = cov / s
    if dead:
        cos.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    cos.clamp_(-1.0, 1.0)
    if on_diag is not None and on_diag.numel():
        cos[:, on_diag] = 1.0
    pi_minus = torch.arccos(cos).neg_().add_(math.pi)                   # π − θ
    sigma = torch.mul(cos, cos, out=cov).neg_().add_(1.0).clamp_(min=0.0).sqrt_()   # sin θ
    sigma.addcmul_(pi_minus, cos).mul_(s).mul_(1.0 / (2.0 * math.pi))
    sdot = pi_minus.mul_(1.0 / (2.0 * math.pi))
    if dead:
        sdot.masked_fill_(s == 0, 0.0)
    return sigma, sdot


def _triu(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    iu = torch.triu_indices(n, n)
    rows, cols = iu[0].contiguous(), iu[1].contiguous()
    diag_idx = torch.nonzero(rows == cols).reshape(-1)
    return rows, cols, diag_idx


def _unpack(v: torch.Tensor, n: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(n, n, dtype=v.dtype)
    out[rows, cols] = v
    out[cols, rows] = v
    return out


def relu_expectations(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ReLU expectations for a batch of symmetric covariance matrices.

    Args:
        cov: ``(..., n, n)`` pre-activation covariances ``Σ̃(x_a, x_b)``.

    Returns:
        ``(Σ, Σ̇)`` of the same shape: ``E[relu(h_a) relu(h_b)]`` and ``E[1{h_a>0} 1{h_b>0}]``
        (arc-cosine kernels of degree 1 and 0, Cho & Saul 2009, halved; module docstring).
    """
    n = cov.shape[-1]
    batch = cov.shape[:-2]
    rows, cols, diag_idx = _triu(n)
    flat = cov.reshape(-1, n, n)
    packed = flat[:, rows, cols].clone()
    std = flat.diagonal(dim1=-2, dim2=-1).clamp(min=0).sqrt()
    sprod = std[:, rows] * std[:, cols]
    sigma, sdot = _relu_chunk(packed, sprod, diag_idx, bool((std == 0).any()))
    full_s = torch.stack([_unpack(v, n, rows, cols) for v in sigma]).reshape(*batch, n, n)
    full_d = torch.stack([_unpack(v, n, rows, cols) for v in sdot]).reshape(*batch, n, n)
    return full_s, full_d


# ----------------------------------------------------------------------------------------------------
# Graphon NTK
# ----------------------------------------------------------------------------------------------------
def _as_graphon(w: ArrayLike, dtype: torch.dtype, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w).detach().to("cpu", dtype)
    if t.dim() != 2 or t.numel() == 0:
        raise ConfigError(f"{what} has shape {tuple(t.shape)}; a step graphon is a non-empty 2-d K_out x K_in "
                          "array")
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0 or float(t.max()) > 1:
        raise ConfigError(f"{what} has values outside [0, 1]; pass connection probabilities (a graphon "
                          "estimate's matrix)")
    return t


def _check_architecture(graphons: Sequence[ArrayLike], d: int, output_density: ArrayLike | None,
                        dtype: torch.dtype) -> tuple[list[torch.Tensor], torch.Tensor]:
    if len(graphons) == 0:
        raise ConfigError("the graphon NTK needs at least one masked layer; pass [W1, ..., WL]")
    ws = [_as_graphon(w, dtype, f"graphon of layer {i + 1}") for i, w in enumerate(graphons)]
    k_in = ws[0].shape[1]
    if k_in > d:
        raise ConfigError(f"the input-layer graphon has K_in={k_in} cells but the batch has only d={d} features; "
                          f"re-estimate the input layer with K_in <= {d}")
    for i in range(1, len(ws)):
        if ws[i].shape[1] != ws[i - 1].shape[0]:
            raise ConfigError(f"graphon of layer {i + 1} has K_in={ws[i].shape[1]} but layer {i} has "
                              f"K_out={ws[i - 1].shape[0]}; the graphon NTK covers plain MLPs whose hidden "
                              "layers share one grid, re-estimate all layers with one K")
    k_last = ws[-1].shape[0]
    if output_density is None:
        out = torch.ones(k_last, dtype=dtype)
    else:
        out = torch.as_tensor(np.asarray(output_density), dtype=dtype).reshape(-1)
        if out.shape[0] != k_last or float(out.min()) < 0 or float(out.max()) > 1:
            raise ConfigError(f"output_density must be {k_last} probabilities in [0, 1] (one per cell of the "
                              f"last hidden layer), got shape {tuple(out.shape)}")
    return ws, out


def graphon_ntk(graphons: Sequence[ArrayLike], X: ArrayLike, *, output_density: ArrayLike | None = None,
                dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Graphon NTK Θ (n × n) of a bias-free ReLU MLP with step graphons ``[W¹, ..., W^L]`` on a batch ``X``.

    Args:
        graphons: ``W¹`` of shape ``(K, K_in)`` (input layer, ``K_in <= d``; input side evaluated at the
            feature positions, module docstring) and ``W²..W^L`` of shape ``(K, K)``; values in [0, 1].
        X: ``(n, d)`` batch.
        output_density: ``(K,)`` keep-probability of the readout per last-hidden-layer cell (default dense).
        dtype: float64 by default (the ``c^L`` identity holds to 1e-10).

    Returns:
        ``(n, n)`` float64 numpy array.

    Raises:
        ConfigError: an architecture the NTK does not cover (mismatched grids, values outside [0, 1],
        input grid finer than d, a batch that is not 2-d).
    """
    x = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).detach().to("cpu", dtype)
    if x.dim() != 2:
        raise ConfigError(f"the NTK batch has shape {tuple(x.shape)}; pass a 2-d (n_samples, d) batch "
                          "(flatten images first)")
    n, d = x.shape
    ws, w_out = _check_architecture(graphons, d, output_density, dtype)
    k_in = ws[0].shape[1]
    k = ws[0].shape[0]
    n_layers = len(ws)
    with torch.no_grad():
        feat_cell = torch.from_numpy(cell_of_position(d, k_in))
        onehot = torch.nn.functional.one_hot(feat_cell, k_in).to(dtype)          # (d, K_in)
        # Diagonal pass: Σ̃^l(u; x, x) for every layer (θ = 0 there: Σ = Σ̃/2, Σ̇ = 1/2).
        diag_t = ws[0] @ ((x * x) @ onehot).mT / d                                 # (K, n)
        stds = []
        for layer in range(n_layers):
            stds.append(diag_t.clamp(min=0).sqrt())
            if layer + 1 < n_layers:
                diag_t = (ws[layer + 1] / k) @ (diag_t / 2)
        deads = [bool((sd == 0).any()) for sd in stds]
        if k_in < d:
            # Per-cell input Grams G_c = (1/d) X_c X_cᵀ, flattened (K_in, n·n); Σ̃¹ = W¹ G per chunk.
            grams = torch.empty(k_in, n * n, dtype=dtype)
            for c in range(k_in):
                xc = x[:, feat_cell == c]
                torch.mm(xc, xc.mT, out=grams[c].view(n, n))
            grams.mul_(1.0 / d)
        else:
            # One cell per input feature (the paper's per-pixel input graphon): d Grams would take
            # d·n² floats, so Σ̃¹(u) = (1/d) X diag(W¹(u, ·)) Xᵀ is formed per hidden cell instead.
            sig1 = torch.empty(k, n * n, dtype=dtype)
            for u in range(k):
                torch.mm(x * ws[0][u], x.mT, out=sig1[u].view(n, n))
            sig1.mul_(1.0 / d)
        rows, cols, _ = _triu(n)
        flat_idx = rows * n + cols
        # Every pair (a, b) evolves independently given the diagonals: process the upper triangle in
        # cache-sized chunks through all layers (memory-bound passes become cache-bound).
        out = torch.empty(rows.shape[0], dtype=dtype)
        chunk = max(256, min(4096, (1 << 17) // max(k, 1)))
        ws_scaled = [w / k for w in ws[1:]]
        w_out_row = (w_out / k).reshape(1, k)
        for start in range(0, rows.shape[0], chunk):
            sl = slice(start, start + chunk)
            r, c_ = rows[sl], cols[sl]
            on_diag = torch.nonzero(r == c_).reshape(-1)
            sig_t = (ws[0] @ torch.index_select(grams, 1, flat_idx[sl]) if k_in < d      # Σ̃¹ (K, B)
                     else torch.index_select(sig1, 1, flat_idx[sl]))
            theta = sig_t.clone()                                                 # Θ̃¹
            for layer in range(n_layers):
                sd = stds[layer]
                sprod = torch.index_select(sd, 1, r).mul_(torch.index_select(sd, 1, c_))
                sigma, sdot = _relu_chunk(sig_t, sprod, on_diag, deads[layer])
                theta.mul_(sdot)                                                  # Σ̇^l Θ̃^l
                if layer + 1 < n_layers:
                    sig_t = ws_scaled[layer] @ sigma                              # Σ̃^{l+1} = ∫ W Σ^l
                    theta = torch.addmm(sig_t, ws_scaled[layer], theta)          # + ∫ W Σ̇ Θ̃
                else:
                    out[sl] = (w_out_row @ sigma + w_out_row @ theta).reshape(-1)   # readout
        return _unpack(out, n, rows, cols).to(torch.float64).numpy()


def dense_ntk(X: ArrayLike, depth: int, *, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """NTK of the dense bias-free ReLU MLP with ``depth`` hidden layers (all graphons 1, K = 1)."""
    if depth < 1:
        raise ConfigError(f"depth={depth}; the NTK needs at least one hidden layer")
    return graphon_ntk([np.ones((1, 1))] * depth, X, dtype=dtype)


# ----------------------------------------------------------------------------------------------------
# Finite masked networks and their empirical NTK
# ----------------------------------------------------------------------------------------------------
class MaskedMLP(nn.Module):
    """Finite bias-free ReLU MLP in NTK parameterisation with fixed masks (module docstring).

    Args:
        masks: ``[M¹ (n_1 × d), M² (n_2 × n_1), ...]`` bool tensors of the masked layers.
        out_features: readout outputs (dense unless ``output_mask`` is given).
        output_mask: optional ``(out_features, n_L)`` bool readout mask.
        generator: torch generator for the N(0, 1) weights.
        dtype: parameter dtype.
    """

    def __init__(self, masks: Sequence[torch.Tensor], *, out_features: int = 1,
                 output_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        all_masks = list(masks)
        n_last = all_masks[-1].shape[0]
        if output_mask is None:
            output_mask = torch.ones(out_features, n_last, dtype=torch.bool)
        all_masks.append(output_mask)
        for i in range(1, len(all_masks)):
            if all_masks[i].shape[1] != all_masks[i - 1].shape[0]:
                raise ConfigError(f"mask {i} has {all_masks[i].shape[1]} inputs but mask {i - 1} has "
                                  f"{all_masks[i - 1].shape[0]} outputs; the masks do not form an MLP")
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(tuple(m.shape), generator=generator, dtype=dtype)) for m in all_masks])
        for i, m in enumerate(all_masks):
            self.register_buffer(f"mask{i}", m.to(dtype))

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask{i}") for i in range(len(self.weights))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        last = len(self.weights) - 1
        for i, (w, m) in enumerate(zip(self.weights, self.masks())):
            h = h @ (w * m).mT / math.sqrt(w.shape[1])
            if i < last:
                h = torch.relu(h)
        return h


def empirical_ntk(model: nn.Module, X: torch.Tensor,
                  masks: Mapping[str, torch.Tensor] | None = None) -> np.ndarray:
    """Empirical NTK ``Θ(x, x') = (1/C) Σ_c ⟨∂f_c(x)/∂θ, ∂f_c(x')/∂θ⟩`` of ``model`` on ``X`` (n × n).

    Uses ``torch.func.jacrev`` vmapped over the samples.  With ``C`` outputs the per-output kernels are
    averaged.  ``masks`` (parameter name → bool tensor) restricts the tangent space to the kept weights
    (needed when pruned weights are merely zero, not masked in the forward pass; a :class:`MaskedMLP`
    already has zero gradients there).
    """
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    theta = None
    for name, j in jac.items():
        if masks is not None and name in masks:
            j = j * masks[name].to(j.dtype)
        jj = j.reshape(j.shape[0], j.shape[1], -1)
        term = torch.einsum("acp,bcp->ab", jj, jj)
        theta = term if theta is None else theta + term
    assert theta is not None
    c = next(iter(jac.values())).shape[1]
    return (theta / c).to(torch.float64).detach().numpy()


def sample_masks(graphons: Sequence[ArrayLike], d: int, width: int | Sequence[int], *,
                 generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Sample finite masks from step graphons: entry (i, j) ~ Bernoulli(W(cell(i), cell(j))).

    Neuron ``i`` of a layer of ``n`` neurons sits in cell ``cell_of_position(n, K)[i]`` (natural order);
    input feature ``j`` in the cell of the near-equal partition of ``range(d)`` into ``K_in`` cells.
    """
    ws = [np.asarray(w, dtype=np.float64) for w in graphons]
    widths = [int(width)] * len(ws) if isinstance(width, (int, np.integer)) else [int(w) for w in width]
    if len(widths) != len(ws):
        raise ConfigError(f"{len(widths)} widths for {len(ws)} graphons; pass one width per masked layer")
    masks = []
    n_prev = d
    for w, n in zip(ws, widths):
        rows = cell_of_position(n, w.shape[0])
        cols = cell_of_position(n_prev, w.shape[1])
        probs = torch.from_numpy(w[rows][:, cols])
        masks.append(torch.rand(probs.shape, generator=generator, dtype=torch.float64) < probs)
        n_prev = n
    return masks


def sample_masked_mlp(graphons: Sequence[ArrayLike], d: int, width: int | Sequence[int], *, seed: int = 0,
                      out_features: int = 1, dtype: torch.dtype = torch.float64) -> MaskedMLP:
    """A finite :class:`MaskedMLP` whose masks are sampled from ``graphons`` (see :func:`sample_masks`)."""
    gen = torch.Generator().manual_seed(seed)
    masks = sample_masks(graphons, d, width, generator=gen)
    return MaskedMLP(masks, out_features=out_features, generator=gen, dtype=dtype)


# ----------------------------------------------------------------------------------------------------
# From a finite network's masks to aligned graphons
# ----------------------------------------------------------------------------------------------------
def mlp_coverage(masks: Sequence[tuple[str, torch.Tensor]], d: int | None = None) -> str | None:
    """Why the graphon NTK does not cover these masks (``None`` when it does).

    Covered: a chain of ≥ 2 two-dimensional masks ``(n_1, d), (n_2, n_1), ..., (C, n_L)`` (the last is the
    readout) — a plain MLP without convolutions or skip connections.
    """
    if len(masks) < 2:
        return "it needs at least one hidden layer and a readout (>= 2 masks)"
    for name, m in masks:
        if m.dim() != 2:
            return (f"layer {name!r} is a {m.dim()}-d mask; the graphon NTK covers bias-free ReLU MLPs "
                    "(2-d masks) only")
    if d is not None and masks[0][1].shape[1] != d:
        return f"the first layer {masks[0][0]!r} takes {masks[0][1].shape[1]} inputs but the batch has d={d}"
    for (pn, pm), (n, m) in zip(masks, masks[1:]):
        if m.shape[1] != pm.shape[0]:
            return (f"layer {n!r} takes {m.shape[1]} inputs but {pn!r} has {pm.shape[0]} outputs; "
                    "only plain MLPs (no skip connections) are covered")
    return None


def graphons_from_masks(masks: Sequence[tuple[str, torch.Tensor]], K: int = 64, *,
                        d: int | None = None, per_pixel_input: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Aligned step graphons of a finite MLP for :func:`graphon_ntk`.

    The neurons of every hidden layer get *one* ordering, shared by the layer that feeds them (output
    side) and the layer they feed (input side): in-degree descending, ties by out-degree descending,
    then by index.  Input features keep their natural order.  ``K`` is capped at the narrowest hidden
    layer, ``K_in`` at ``d``; ``per_pixel_input`` gives every input feature its own cell (``K_in = d``,
    the paper's input graphon W¹(u, v_j) per pixel j) instead of ``min(K, d)`` cells of adjacent
    features.  The readout (last mask) becomes ``output_density``: per last-hidden-layer cell, the share
    of kept readout weights.

    Returns:
        ``(graphons, output_density)``.

    Raises:
        ConfigError: the masks are not a plain MLP (:func:`mlp_coverage` says which layer and why).
    """
    why = mlp_coverage(masks, d)
    if why is not None:
        raise ConfigError(f"the graphon NTK does not cover this network: {why}")
    hidden = [m.detach().cpu() for _, m in masks[:-1]]
    readout = masks[-1][1].detach().cpu()
    k = min(K, *(m.shape[0] for m in hidden))
    k_in = hidden[0].shape[1] if per_pixel_input else min(K, hidden[0].shape[1])
    orders = []
    for i, m in enumerate(hidden):
        nxt = hidden[i + 1] if i + 1 < len(hidden) else readout
        indeg = m.sum(1).numpy()
        outdeg = nxt.sum(0).numpy()
        orders.append(np.lexsort((np.arange(m.shape[0]), -outdeg, -indeg)))
    gs = []
    for i, (name, m) in enumerate(masks[:-1]):
        col_order = None if i == 0 else orders[i - 1]
        est = estimate(m.bool(), (k, k_in if i == 0 else k), row_order=orders[i], col_order=col_order,
                       keep_input_order=(i == 0), name=name)
        gs.append(est.matrix)
    r = readout.to(torch.float64)[:, torch.from_numpy(orders[-1])]
    cells = torch.from_numpy(cell_of_position(r.shape[1], k))
    col_share = r.mean(0)
    out = torch.zeros(k, dtype=torch.float64).index_add_(0, cells, col_share)
    out /= torch.bincount(cells, minlength=k).to(torch.float64)
    return gs, out.numpy()


def masks_ntk(masks: Mapping[str, torch.Tensor], x: torch.Tensor, K: int = 64, *,
              per_pixel_input: bool = False) -> np.ndarray:
    """Graphon NTK on the ``(n, d)`` batch ``x`` of the step graphons estimated from an MLP's masks
    (every ≥ 2-d mask in order, the last one the readout; :func:`graphons_from_masks`).

    Raises:
        ConfigError: masks that are not a plain MLP (which layer and why).
    """
    items = [(n, m.detach().cpu()) for n, m in masks.items() if isinstance(m, torch.Tensor) and m.dim() >= 2]
    why = mlp_coverage(items, int(x.shape[1]))
    if why is not None:
        raise ConfigError(f"the graphon NTK does not cover this network: {why}")
    graphons, w_out = graphons_from_masks(items, K, d=int(x.shape[1]), per_pixel_input=per_pixel_input)
    return graphon_ntk(graphons, x, output_density=w_out)
