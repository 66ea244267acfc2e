"""Mask computation in forward-backward units: SNIP, GraSP, SynFlow-100 on ResNet-20 and VGG-16.

The unit is the runner's (``benchmark.metrics.forward_backward_seconds``): one forward and backward of the
model on one training batch of the recipe's batch size (128 on the CIFAR tasks), measured in the same
process right before the pruner runs.  Inputs are random CIFAR-shaped tensors (3 × 32 × 32, 10 classes):
the cost of these pruners does not depend on the pixel values.  Each pruner computes the masks of a fresh
copy of the model at 90 % sparsity with its default hyperparameters (SNIP and GraSP: 10 samples per
class; SynFlow: 100 iterations, data-free) and global allocation.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

SYNFLOW_TARGET_FB = 110.0


class _TimedAllocation:
    """The allocation, with the wall time of its ``masks`` calls added up (the ranking part of a pruner)."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0

    def masks(self, scores, density):
        t0 = time.perf_counter()
        try:
            return self.inner.masks(scores, density)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self.inner, name)


def measure(model_name: str, pruners: list[str], batch: int = 128, synflow_iterations: int = 100) -> dict:
    from benchmark.metrics import forward_backward_seconds
    from benchmark.tasks.models import MODELS
    from pruners import ALLOCATIONS, PRUNERS, PruneContext
    from pruners.registry import build_config

    torch.manual_seed(0)
    model = MODELS.get(model_name)(input_shape=(3, 32, 32), num_outputs=10)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(max(batch, 100), 3, 32, 32, generator=g)
    y = torch.arange(len(x)) % 10

    def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = min(n, len(x))
        return [(x[i:min(i + batch, n)], y[i:min(i + batch, n)]) for i in range(0, n, batch)]

    ctx = PruneContext(seed=0, batches=batches, loss_fn=F.cross_entropy, device=torch.device("cpu"),
                       num_classes=10, input_shape=(3, 32, 32), prune_batch_size=batch)
    out = {"model": model_name, "batch": batch, "params": sum(p.numel() for p in model.parameters()),
           "synflow_iterations": synflow_iterations}
    fb = forward_backward_seconds(model, x[:batch], y[:batch], F.cross_entropy)
    out["fb_s"] = fb
    for name in pruners:
        args = {"iterations": synflow_iterations} if name == "synflow" else {}
        pruner = build_config(PRUNERS.get(name), args, name)
        m = copy.deepcopy(model)
        alloc = _TimedAllocation(ALLOCATIONS.get("global")())
        t0 = time.perf_counter()
        pruner.initial_masks(m, ctx, 0.9, alloc)  # type: ignore[arg-type]
        t = time.perf_counter() - t0
        fb2 = forward_backward_seconds(model, x[:batch], y[:batch], F.cross_entropy)  # the unit again, after
        out[name] = {"s": t, "fb": t / ((fb + fb2) / 2), "alloc_s": alloc.seconds}
        fb = fb2
    return out


def section(quick: bool = False) -> str:
    from benchmark.perf.timing import load_average

    pruners = ["snip", "grasp", "synflow"]
    if quick:
        results = [measure("resnet20", pruners, batch=16, synflow_iterations=2)]
    else:
        results = [measure("resnet20", pruners), measure("vgg16", pruners)]
    names = {"snip": "SNIP", "grasp": "GraSP", "synflow": "SynFlow-100" if not quick else "SynFlow-2"}
    lines = ["## Mask computation in forward-backward units", "",
             "Wall time of computing the masks at initialisation (90 % sparsity, global allocation, default "
             "hyperparameters) divided by one forward-backward pass on a training batch of "
             f"{results[0]['batch']} (the runner's `mask_time_fb`; unit measured before and after each pruner, "
             f"mean of the two). Target: SynFlow ≤ {SYNFLOW_TARGET_FB:.0f}. Load average at the end: "
             f"{load_average():.1f}.", "",
             "| model | parameters | forward-backward (s) | " + " | ".join(names[p] for p in pruners) + " |",
             "|---|---|---|" + "---|" * len(pruners)]
    for r in results:
        cells = [f"{r[p]['fb']:.1f} FB ({r[p]['s']:.1f} s)" for p in pruners]
        lines.append(f"| {r['model']} | {r['params']:,} | {r['fb_s']:.3f} | " + " | ".join(cells) + " |")
    syn = [r["synflow"]["fb"] for r in results]
    lines += ["", "Share of each pruner's time spent in the allocation (`allocation.masks`: ranking the scores and "
              "building the masks): " + "; ".join(
                  f"{r['model']}: "
                  + ", ".join(f"{names[p]} {100 * r[p]['alloc_s'] / r[p]['s']:.0f} %" for p in pruners)
                  for r in results) + "."]
    if not quick:
        lines += ["", f"SynFlow-100: {', '.join(r['model'] + f' {v:.1f}' for r, v in zip(results, syn))} FB — "
                  f"{'meets' if max(syn) <= SYNFLOW_TARGET_FB else 'misses'} the ≤ {SYNFLOW_TARGET_FB:.0f} target. "
                  "A SynFlow round is one forward-backward of a single all-ones sample through |θ| (cheap against a "
                  f"batch of {results[0]['batch']}) plus the global allocation over all N scores; per round: "
                  + ", ".join(f"{r['model']} {1e3 * r['synflow']['s'] / r['synflow_iterations']:.0f} ms (allocation "
                              f"{1e3 * r['synflow']['alloc_s'] / r['synflow_iterations']:.0f} ms)" for r in results)
                  + ". The allocation selects instead of sorting: the budget-th largest score is found among "
                  "candidates bracketed by a strided sample (a few linear passes, no N log N sort), each layer's "
                  "kept set is read off that one threshold (no per-layer ranking), and entries tied at the threshold "
                  "are kept by flat index as a stable sort would, so the masks are bit-identical to sorting "
                  "(tests/pruners/test_allocation.py, tests/pruners/test_synflow_reference.py). SynFlow computes "
                  "|θ| once per pruning and makes one masked copy per round."]
    return "\n".join(lines) + "\n"
