"""Real sparse execution: CSR vs dense inference latency at 90 / 98 / 99 % sparsity (CPU).

Models: LeNet-300-100 (784-300-100-10) and an MLP of width 4096 (784-4096-4096-10), random masks of the
given sparsity in every layer (uniform allocation), exported with :func:`benchmark.sparse_export.to_sparse`.
Timed side by side with :func:`benchmark.sparse_export.sparse_speedup` (interleaved blocks after a warm-up,
median of per-round ratios) at batch 1 (latency) and batch 128 (throughput).  The theoretical speed-up is
the FLOPs ratio ``flops_dense / flops_sparse`` counted as in the results (RigL counting, 1 / density here).
"""
from __future__ import annotations

import torch

from benchmark.perf.timing import clock, clock_name, load_average


def measure(model: str, sparsity: float, batch: int, quick: bool = False) -> dict[str, float]:
    from benchmark.metrics import inference_flops, layer_macs
    from benchmark.sparse_export import sparse_speedup
    from benchmark.tasks.models import MODELS
    from pruners import ALLOCATIONS, prunable_parameters

    hidden = {"lenet300": [300, 100], "mlp4096": [4096, 4096]}[model]
    torch.manual_seed(0)
    net = MODELS.get("mlp")(input_shape=(1, 28, 28), num_outputs=10, hidden=hidden).eval()
    g = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(net).items()}
    masks = ALLOCATIONS.get("uniform")().masks(scores, 1.0 - sparsity)
    masks.apply_(net)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    macs = layer_macs(net, x)
    theory = inference_flops(macs) / inference_flops(macs, masks)
    reps, inner = (3, 1) if quick else ((15, 20) if model == "lenet300" else (11, 3))
    r = sparse_speedup(net, masks, x, reps=reps, inner=inner, warmup=2 if quick else 5, clock=clock())
    return {**r, "theory": theory}


def section(quick: bool = False) -> str:
    lines = ["## Real sparse execution: CSR vs dense inference (CPU)", "",
             "Linear layers exported to `torch.sparse` CSR (`benchmark.sparse_export.to_sparse`; outputs equal "
             f"to the dense model's up to rounding, tested). {torch.get_num_threads()} torch threads; load average "
             f"{load_average():.1f}; {clock_name()}. Speed-up = dense latency / CSR latency (median of interleaved rounds); "
             "theoretical = FLOPs ratio.", "",
             "| model | sparsity | batch | dense (ms) | CSR (ms) | measured speed-up | theoretical (FLOPs) |",
             "|---|---|---|---|---|---|---|"]
    names = {"lenet300": "LeNet-300-100", "mlp4096": "MLP 784-4096-4096-10"}
    for model in ("lenet300", "mlp4096"):
        for sparsity in ((0.9, 0.99) if quick else (0.9, 0.98, 0.99)):
            for batch in ((1,) if quick else (1, 128)):
                r = measure(model, sparsity, batch, quick)
                lines.append(f"| {names[model]} | {100 * sparsity:g} % | {batch} | {1e3 * r['dense_s']:.3f} | "
                             f"{1e3 * r['sparse_s']:.3f} | **{r['speedup']:.2f}×** | {r['theory']:.0f}× |")
    lines += ["", "Convolutions are not exported (torch has no CSR convolution; see the module docstring of "
              "`benchmark.sparse_export`). A grid gets the same measurement per run on its final model with "
              "`analysis = { sparse_latency = true }` (column `sparse_speedup`, shown by the leaderboard table as "
              "'CSR speed-up' beside the FLOPs ratios).", ""]
    return "\n".join(lines)
