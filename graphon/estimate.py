"""Mask → step-graphon estimation (Graphon Limit Hypothesis, Pham et al., NeurIPS 2025, arXiv 2510.17515).

A layer mask ``M ∈ {0,1}^{n_out × n_in}`` is the biadjacency matrix of a bipartite graph: row ``i`` is an
output neuron, column ``j`` an input neuron.  We estimate the graphon ``W(u, v)`` on ``[0,1]²`` (``u`` the
output side, ``v`` the input side) as a ``K_out × K_in`` step function.

Methods
-------
``"sas"`` (default, the paper's estimator)
    Simplified sorting-and-smoothing (SAS, Chan & Airoldi, ICML 2014, "A consistent histogram estimator
    for exchangeable graph models", §3) *without* its total-variation step: sort the output-side
    neurons by in-degree (row sums) and the input-side neurons by out-degree (column sums), both
    **descending** (ties broken stably by the original index: the lower index comes first), split each
    sorted axis into ``K`` cells of near-equal size and average the mask in every cell (Chan & Airoldi's
    histogram ``H_ij = (1/h²) Σ_{block} A``).  The paper does not state the sort direction; descending
    puts the densest neurons at ``u, v ≈ 0``.
``"sas_tv"``
    The full SAS: the histogram above followed by total-variation denoising (Chan & Airoldi 2014,
    Alg. 1 step 3; Rudin–Osher–Fatemi TV via Chambolle's projection, ``skimage.restoration.
    denoise_tv_chambolle`` with ``weight=tv_weight``), clipped to ``[0, 1]``.
``"usvt"``
    Universal singular value thresholding (Chatterjee, Ann. Statist. 2015, "Matrix estimation by universal
    singular value thresholding", Alg. §1.2): map the mask to ``Y = 2M − 1 ∈ [−1, 1]``, keep the singular
    values ``s ≥ (2 + η)·sqrt(max(n_out, n_in))`` (η = ``usvt_eta``, default 0.01), map back with
    ``(Ŷ + 1)/2``, clip to ``[0, 1]``, then average in the same degree-sorted cells as ``"sas"``.  Cost
    ``O(n_out·n_in·r)`` for ``r`` kept singular values (``torch.svd_lowrank``, doubled until the threshold
    is passed), far slower than SAS; meant for offline analysis.

Cell convention (sides not divisible by K)
------------------------------------------
An axis of ``n`` sorted neurons is cut at the boundaries ``b_k = ⌊k·n/K⌋`` (``k = 0..K``); cell ``k`` holds
sorted positions ``b_k ≤ i < b_{k+1}``, so cells have ``⌊n/K⌋`` or ``⌈n/K⌉`` neurons and cover every neuron.
Cell ``k`` is identified with the interval ``[k/K, (k+1)/K)`` of the step graphon; for unequal cells the
position error is below ``1/n``.  :func:`cell_bounds` and :func:`cell_of_position` implement it, and the
graphon NTK (:mod:`graphon.ntk`) uses the same partition for the input features.

Implementation: the sorted histogram is ``Rᵀ M C`` with one-hot cell-indicator matrices ``R`` (rows) and
``C`` (columns), so the mask is never permuted; one float32 matmul ``M C`` (exact for integer counts below
2²⁴) and a K-row ``index_add``.  Time is linear in the number of mask entries, ``O(n_out·n_in·K)`` flops in
the matmul: about 40 ms for 4096 × 4096 on 2 CPU threads (``python -m graphon.bench``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch

from pruners.registry import ConfigError

Method = Literal["sas", "sas_tv", "usvt"]
METHODS: tuple[str, ...] = ("sas", "sas_tv", "usvt")


@dataclass(frozen=True)
class GraphonEstimate:
    """A K_out × K_in step-graphon estimate of one layer mask.

    Attributes:
        matrix: ``(K_out, K_in)`` float64 cell densities; ``matrix[a, b]`` is the mean of the mask over the
            output-side cell ``a`` and input-side cell ``b`` (after sorting).
        row_perm: ``row_perm[k]`` is the original output neuron at sorted position ``k``.
        col_perm: ``col_perm[k]`` is the original input neuron at sorted position ``k``.
        row_sizes: number of output neurons per row cell (``⌊n/K⌋`` or ``⌈n/K⌉``).
        col_sizes: number of input neurons per column cell.
        in_degree: ``(n_out,)`` row sums of the mask (connections *into* each output neuron), original order.
        out_degree: ``(n_in,)`` column sums (connections *out of* each input neuron), original order.
        method: ``"sas"``, ``"sas_tv"`` or ``"usvt"``.
        density: fraction of ones in the mask (cell-size-weighted mean of ``matrix`` for ``"sas"``).
    """

    matrix: np.ndarray
    row_perm: np.ndarray
    col_perm: np.ndarray
    row_sizes: np.ndarray
    col_sizes: np.ndarray
    in_degree: np.ndarray
    out_degree: np.ndarray
    method: str = "sas"
    density: float = field(default=float("nan"))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_out, n_in)`` of the mask."""
        return int(self.in_degree.shape[0]), int(self.out_degree.shape[0])

    @property
    def K(self) -> tuple[int, int]:
        """``(K_out, K_in)``."""
        return int(self.matrix.shape[0]), int(self.matrix.shape[1])

    @property
    def heterogeneity(self) -> float:
        """Standard deviation of the K_out·K_in cell values (unweighted; 0 for a constant graphon)."""
        return float(self.matrix.std())

    @property
    def dead_outputs(self) -> float:
        """Share of output neurons with no incoming connection (zero rows)."""
        return float((self.in_degree == 0).mean())

    @property
    def dead_inputs(self) -> float:
        """Share of input neurons with no outgoing connection (zero columns)."""
        return float((self.out_degree == 0).mean())

    @property
    def dead_share(self) -> float:
        """Share of the layer's n_out + n_in neurons that are dead on this layer (zero row or column)."""
        n_out, n_in = self.shape
        return float(((self.in_degree == 0).sum() + (self.out_degree == 0).sum()) / (n_out + n_in))


def cell_bounds(n: int, K: int) -> np.ndarray:
    """Boundaries ``b_k = ⌊k·n/K⌋``, k = 0..K, of K near-equal cells covering ``range(n)``."""
    if K < 1 or K > n:
        raise ConfigError(f"K={K} cells cannot split a side of {n} neurons; choose 1 <= K <= {n}")
    return (np.arange(K + 1, dtype=np.int64) * n) // K


def cell_of_position(n: int, K: int) -> np.ndarray:
    """``(n,)`` cell index of every sorted position 0..n−1 under :func:`cell_bounds`."""
    b = cell_bounds(n, K)
    return np.repeat(np.arange(K, dtype=np.int64), np.diff(b))


def as_mask_matrix(mask: torch.Tensor | np.ndarray, name: str = "mask") -> torch.Tensor:
    """Validate a 2-d binary mask (bool or 0/1 numbers) and return it as a CPU float32 tensor.

    Raises:
        ConfigError: when the mask is not 2-d, is empty, or has entries other than 0 and 1.
    """
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise ConfigError(f"{name} is a {type(mask).__name__}, not a tensor; pass a 2-d bool tensor")
    if mask.dim() != 2:
        raise ConfigError(f"{name} has shape {tuple(mask.shape)}, not 2-d; pass a 2-d (n_out, n_in) mask "
                          "(sum conv masks over kernel positions first)")
    if mask.numel() == 0:
        raise ConfigError(f"{name} has shape {tuple(mask.shape)} with no entries; pass a non-empty mask")
    mask = mask.detach().cpu()
    if mask.dtype != torch.bool:
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ConfigError(f"{name} is not binary (entries other than 0 and 1); threshold it, "
                              "e.g. 'mask != 0', before estimating a graphon")
    return mask.to(torch.float32)


def _normalise_K(K: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(K, (int, np.integer)):
        return int(K), int(K)
    k = tuple(int(x) for x in K)
    if len(k) != 2:
        raise ConfigError(f"K={K!r} must be an int or a pair (K_out, K_in)")
    return k  # type: ignore[return-value]


def _check_perm(p: np.ndarray | torch.Tensor | None, n: int, what: str) -> np.ndarray | None:
    if p is None:
        return None
    arr = np.asarray(p, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n or not np.array_equal(np.sort(arr), np.arange(n)):
        raise ConfigError(f"{what} is not a permutation of range({n}); pass one index per neuron")
    return arr


def _usvt(mf: torch.Tensor, eta: float) -> torch.Tensor:
    """Chatterjee (2015) USVT of a 0/1 matrix, returned in [0, 1] (float64)."""
    y = (2.0 * mf.to(torch.float64) - 1.0)
    n_out, n_in = y.shape
    thr = (2.0 + eta) * np.sqrt(max(n_out, n_in))
    full = min(n_out, n_in)
    q = min(full, 16)
    while True:
        if q >= full or full <= 64:
            u, s, vh = torch.linalg.svd(y, full_matrices=False)
            v = vh.mT
            break
        with torch.random.fork_rng():  # svd_lowrank draws from the global RNG: keep it deterministic
            torch.manual_seed(0)
            u, s, v = torch.svd_lowrank(y, q=q, niter=4)
        if s[-1] < thr:
            break
        q = min(full, 2 * q)
    keep = s >= thr
    yhat = (u[:, keep] * s[keep]) @ v[:, keep].mT
    return ((yhat + 1.0) / 2.0).clamp_(0.0, 1.0)


def estimate(mask: torch.Tensor | np.ndarray, K: int | Sequence[int] = 64, *, method: Method = "sas",
             keep_input_order: bool = False, keep_output_order: bool = False,
             row_order: np.ndarray | torch.Tensor | None = None,
             col_order: np.ndarray | torch.Tensor | None = None,
             tv_weight: float = 0.05, usvt_eta: float = 0.01, name: str = "mask") -> GraphonEstimate:
    """Estimate the step graphon of one layer mask.

    Args:
        mask: ``(n_out, n_in)`` bool (or 0/1) tensor / array, rows = output neurons.
        K: cells per side, an int or ``(K_out, K_in)``; must satisfy ``1 <= K <= side``.
        method: ``"sas"`` (paper: degree-sorted block average), ``"sas_tv"`` (+ TV denoising) or ``"usvt"``.
        keep_input_order: do not sort the input side (columns stay in natural order, e.g. for the input
            layer so that feature selection shows at its pixel positions).
        keep_output_order: likewise for the output side.
        row_order / col_order: explicit permutations (sorted position → original index) that override the
            degree sort; used to align consecutive layers on one ordering of the shared hidden neurons.
        tv_weight: ``weight`` of ``denoise_tv_chambolle`` for ``"sas_tv"`` (cell values are in [0, 1]).
        usvt_eta: η of the USVT threshold ``(2 + η)·sqrt(max(n_out, n_in))``.
        name: used in error messages.

    Returns:
        A :class:`GraphonEstimate`.  Sorting (module docstring): rows by in-degree, columns by out-degree,
        descending, stable.

    Raises:
        ConfigError: mask not 2-d or not binary, K larger than a side, unknown method, bad permutation.
    """
    mf = as_mask_matrix(mask, name)
    n_out, n_in = mf.shape
    k_out, k_in = _normalise_K(K)
    for k, n, side in ((k_out, n_out, "output (rows)"), (k_in, n_in, "input (columns)")):
        if k < 1 or k > n:
            raise ConfigError(f"K={k} is larger than the {side} side of {name} ({n} neurons); "
                              f"choose K <= {n}")
    if method not in METHODS:
        raise ConfigError(f"unknown graphon estimation method {method!r}; choose one of {', '.join(METHODS)}")

    in_deg = mf.sum(1)                      # (n_out,) row sums
    out_deg = torch.ones(1, n_out) @ mf     # (1, n_in) column sums, exact in float32 below 2^24
    out_deg = out_deg.reshape(-1)

    def order(deg: torch.Tensor, given: np.ndarray | torch.Tensor | None, keep: bool, n: int,
              what: str) -> np.ndarray:
        perm = _check_perm(given, n, what)
        if perm is not None:
            return perm
        if keep:
            return np.arange(n, dtype=np.int64)
        return torch.argsort(-deg, stable=True).numpy().astype(np.int64)

    row_perm = order(in_deg, row_order, keep_output_order, n_out, "row_order")
    col_perm = order(out_deg, col_order, keep_input_order, n_in, "col_order")

    row_cell = np.empty(n_out, dtype=np.int64)
    row_cell[row_perm] = cell_of_position(n_out, k_out)
    col_cell = np.empty(n_in, dtype=np.int64)
    col_cell[col_perm] = cell_of_position(n_in, k_in)
    row_sizes = np.diff(cell_bounds(n_out, k_out))
    col_sizes = np.diff(cell_bounds(n_in, k_in))

    src = _usvt(mf, usvt_eta) if method == "usvt" else mf
    c_ind = torch.nn.functional.one_hot(torch.from_numpy(col_cell), k_in).to(src.dtype)
    mc = (src @ c_ind).to(torch.float64)                      # (n_out, K_in) column-cell sums per row
    sums = torch.zeros(k_out, k_in, dtype=torch.float64).index_add_(0, torch.from_numpy(row_cell), mc)
    matrix = (sums / torch.from_numpy(np.outer(row_sizes, col_sizes)).to(torch.float64)).numpy()

    if method == "sas_tv":
        from skimage.restoration import denoise_tv_chambolle

        matrix = np.clip(denoise_tv_chambolle(matrix, weight=tv_weight), 0.0, 1.0)

    return GraphonEstimate(matrix=np.ascontiguousarray(matrix, dtype=np.float64), row_perm=row_perm,
                           col_perm=col_perm, row_sizes=row_sizes, col_sizes=col_sizes,
                           in_degree=in_deg.numpy().astype(np.int64), out_degree=out_deg.numpy().astype(np.int64),
                           method=method, density=float(in_deg.sum()) / (n_out * n_in))


def conv_connectivity(mask: torch.Tensor) -> torch.Tensor:
    """Channel connectivity of a conv mask ``(c_out, c_in, *kernel)``: True where any kernel position is kept.

    Summarising a conv layer as a bipartite graph between channels: ``M[o, i] = 1`` iff
    ``Σ_{kernel positions} mask[o, i, ...] > 0``.  A 2-d mask is returned unchanged.
    """
    if mask.dim() <= 2:
        return mask
    return mask.reshape(mask.shape[0], mask.shape[1], -1).ne(0).any(-1)
