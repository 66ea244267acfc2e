"""Real sparse execution: export a pruned model's Linear layers to ``torch.sparse`` CSR (issue 10).

FLOPs counted the RigL way (``benchmark.metrics``) say what a sparse network *could* cost; this module
measures what it *does* cost on this CPU.  :func:`to_sparse` returns a copy of the model in which every
masked ``nn.Linear`` is replaced by a :class:`CSRLinear` holding ``weight ⊙ mask`` as a compressed
sparse row (CSR) matrix; its forward is ``y = W_csr · xᵀ`` (``torch.mm`` of a CSR and a dense matrix,
MKL's sparse kernel on CPU) plus the bias — the same function as the dense layer, summed in another
order (so equal up to rounding: ~1e-15 relative in float64, ~1e-6 in float32).

Convolutions are not exported: torch has no CSR convolution kernel, and an im2col + CSR product would
materialise the unfolded input (k² times the activations), which costs more than MKL-DNN's dense
convolution at the batch sizes used here.  They stay dense in the exported model.

:func:`sparse_speedup` times the dense model and its CSR export on one batch, interleaved after a
warm-up (``benchmark.perf.timing``), and returns dense time / CSR time (> 1: the sparse model is
faster).  The runner records it as ``sparse_speedup`` when a grid sets ``analysis.sparse_latency``.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings
from typing import Callable, Mapping

import torch
from torch import nn


class CSRLinear(nn.Module):
    """``nn.Linear`` with its weight stored as a CSR matrix (inference only: no gradient to the weight).

    Args:
        linear: the dense layer (its weight, bias, dtype and device are copied).
        mask: bool tensor of the weight's shape (``None``: keep the weight's nonzeros).
    """

    def __init__(self, linear: nn.Linear, mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with torch.no_grad():
            w = linear.weight.detach()
            if mask is not None:
                if tuple(mask.shape) != tuple(w.shape):
                    raise ValueError(f"mask of shape {tuple(mask.shape)} does not match weight {tuple(w.shape)}")
                w = w * mask.to(device=w.device, dtype=w.dtype)
            # to_sparse_csr stores the nonzero entries only (pruned and exactly-zero weights drop out)
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                csr = w.contiguous().to_sparse_csr()
            self.register_buffer("weight", csr)
            self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    @property
    def nnz(self) -> int:
        return int(self.weight._nnz())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        y = torch.mm(self.weight, x2.t().contiguous()).t()   # (out × in)_csr · (in × B) → (B × out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}, layout=csr"


def to_sparse(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None,
              min_sparsity: float = 0.0) -> nn.Module:
    """A copy of ``model`` whose masked Linear layers compute with CSR weights.

    Args:
        model: a plain (merged) model; it is not modified.
        masks: parameter name (``"layers.0.weight"``) → bool mask, e.g. a run's ``masks.pt``.  Layers
            without a mask are left dense; ``None`` exports every Linear layer with its nonzero pattern.
        min_sparsity: export a layer only when at least this fraction of its weights is pruned (CSR
            is slower than dense below roughly 90 % sparsity on CPU; 0 exports every masked layer).
    """
    out = copy.deepcopy(model)
    replace: list[tuple[str, nn.Linear, torch.Tensor | None]] = []
    for name, mod in out.named_modules():
        if type(mod) is not nn.Linear:
            continue
        key = f"{name}.weight" if name else "weight"
        if masks is not None:
            if key not in masks:
                continue
            mask = masks[key].to(torch.bool)
        else:
            mask = mod.weight.detach() != 0
        sparsity = 1.0 - float(mask.sum()) / mask.numel()
        if sparsity < min_sparsity:
            continue
        replace.append((name, mod, mask))
    for name, mod, mask in replace:
        new = CSRLinear(mod, mask)
        if not name:
            return new
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, child, new)
    return out


@torch.no_grad()
def sparse_speedup(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, x: torch.Tensor,
                   reps: int = 9, inner: int = 3, warmup: int = 3,
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Inference latency of ``model`` and of its CSR export on the batch ``x`` (CPU), side by side.

    Both run in eval mode; blocks of ``inner`` forwards alternate ``reps`` times after ``warmup``
    forwards each.  Returns ``dense_s`` and ``sparse_s`` (median seconds per forward) and
    ``speedup`` = median over rounds of dense / sparse.  ``clock``: wall time by default;
    ``time.process_time`` is steadier on a shared machine.
    """
    dense = copy.deepcopy(model).cpu().eval()
    sparse = to_sparse(dense, masks).eval()
    x = x.cpu()
    variants = {"dense": lambda: dense(x), "sparse": lambda: sparse(x)}
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(reps):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = clock()
            for _ in range(inner):
                variants[name]()
            times[name].append((clock() - t0) / inner)
    speed = statistics.median(d / s for d, s in zip(times["dense"], times["sparse"]))
    return {"dense_s": statistics.median(times["dense"]), "sparse_s": statistics.median(times["sparse"]),
            "speedup": speed}
