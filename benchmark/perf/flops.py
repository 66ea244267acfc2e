"""FLOP counting check (``benchmark.metrics``, RigL counting) and the GPU check's numbers.

Neither section times anything on this machine: ``flops`` recomputes the counted multiply-accumulates of
LeNet-300-100, ResNet-20 and VGG-16 and compares them with the closed-form counts; ``gpu`` copies the
output of ``benchmark/gpu_check.py`` on a lent GPU from ``docs/gpu/*.log``.
"""
from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def lenet300_macs() -> int:
    """784·300 + 300·100 + 100·10."""
    return 784 * 300 + 300 * 100 + 100 * 10


def resnet20_macs() -> int:
    """CIFAR ResNet-20 (He et al. 2016, 16/32/64 channels, 3 stages of 3 basic blocks, 1×1 conv
    shortcuts where the shape changes), per 32 × 32 input: Σ C_out · C_in · k² · H_out · W_out."""
    total = 16 * 3 * 9 * 32 * 32                      # stem
    for stage, (c, hw) in enumerate(((16, 32), (32, 16), (64, 8))):
        c_in = 16 if stage == 0 else c // 2
        total += c * c_in * 9 * hw * hw               # first conv of the stage (stride 2 from stage 1 on)
        total += 5 * c * c * 9 * hw * hw              # the other five 3×3 convs
        if stage:
            total += c * c_in * hw * hw               # 1×1 shortcut conv
    return total + 64 * 10                            # classifier after global pooling


def vgg16_macs() -> int:
    """CIFAR VGG-16 (13 3×3 convs, max-pool after each block, one Linear 512→10)."""
    plan = [(64, 32), (64, 32), (128, 16), (128, 16), (256, 8), (256, 8), (256, 8), (512, 4), (512, 4),
            (512, 4), (512, 2), (512, 2), (512, 2)]
    total, c_in = 0, 3
    for c, hw in plan:
        total += c * c_in * 9 * hw * hw
        c_in = c
    return total + 512 * 10


def section(quick: bool = False) -> str:
    from benchmark.metrics import inference_flops, layer_macs
    from benchmark.tasks.models import MODELS
    from pruners import ALLOCATIONS, prunable_parameters

    rows = []
    for name, shape, kwargs, closed in (("mlp", (1, 28, 28), {}, lenet300_macs()),
                                        ("resnet20", (3, 32, 32), {}, resnet20_macs()),
                                        ("vgg16", (3, 32, 32), {}, vgg16_macs())):
        model = MODELS.get(name)(input_shape=shape, num_outputs=10, **kwargs)
        macs = layer_macs(model, torch.zeros(1, *shape))
        g = torch.Generator().manual_seed(0)
        scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}
        masks = ALLOCATIONS.get("erk")().masks(scores, 0.1)
        rel = inference_flops(macs, masks) / inference_flops(macs)
        by_hand = sum(m * float(masks[n].float().mean()) for n, m in macs.items()) / sum(macs.values())
        rows.append((name, sum(macs.values()), closed, rel, by_hand, masks.density()))
    lines = ["## FLOP counting (checked)", "",
             "Every run records `flops_dense`, `flops_sparse` (inference FLOPs per sample), "
             "`inference_flops_rel` = sparse / dense and `train_flops_rel`, counted as in RigL (Evci et al. 2020, "
             "appendix H): a layer's FLOPs are 2 × its multiply-accumulates, scaled by the layer's density; only "
             "the prunable Linear and Conv layers count (batch norm, activations, pooling, bias additions and the "
             "parameter-free shortcut are left out — below 1 % on these networks); a training step costs 3 forward "
             "passes (forward, backward to activations, backward to weights), each at the sparse cost; methods with "
             "extra dense work add it (RigL: the dense gradient at each update step, via "
             "`TrainState.extra_train_flops`). MACs per layer come from a forward hook on one sample "
             "(`benchmark.metrics.layer_macs`: output elements × inputs per output, so grouped convolutions and "
             "strides count correctly).", "",
             "Check against closed-form counts (per 32 × 32 or 28 × 28 sample), and of the density scaling with "
             "ERK masks at 90 % sparsity:", "",
             "| model | counted MACs | closed form | equal | inference_flops_rel (ERK, 90 %) | Σ MACs·density / Σ MACs | overall density |",
             "|---|---|---|---|---|---|---|"]
    names = {"mlp": "LeNet-300-100", "resnet20": "ResNet-20", "vgg16": "VGG-16"}
    for name, counted, closed, rel, hand, dens in rows:
        lines.append(f"| {names[name]} | {counted:,} | {closed:,} | {'yes' if counted == closed else '**no**'} | "
                     f"{rel:.4f} | {hand:.4f} | {dens:.4f} |")
    lines += ["", "FLOPs and density differ under ERK (it keeps the cheap-per-weight layers denser), which is why "
              "`inference_flops_rel` is recorded besides the sparsity.",
              "",
              "Training FLOPs integrate the masks step by step: each step is charged the masks its forward and "
              "backward ran with (`FlopsTracker` notices a mask change after the step in which a schedule made it). "
              "Before this check the tracker charged a whole epoch with the masks at its end, which under-counted "
              "gradual schedules (GMP, AC/DC phases, RigL's drop-and-grow within an epoch) and charged an epoch-end "
              "prune to the epoch before it; fixed in `benchmark/metrics.py` (static masks: unchanged).", ""]
    return "\n".join(lines)


def gpu_section(quick: bool = False) -> str:
    logs = sorted((ROOT / "docs" / "gpu").glob("*.log"))
    lines = ["## GPU check (lent NVIDIA H200)", "",
             "`benchmark/gpu_check.py` ran on a lent NVIDIA H200 (torch 2.11.0+cu130, as the logs say), not on this "
             "machine: ResNet-20, 20,000 CIFAR-shaped samples resident on the device, batch 256, bf16 autocast, "
             "channels-last, SGD momentum; dense, masked (random 90 %, enforcer), Sign-In and HAM (α = 20) trained "
             "one after the other (not interleaved), median epoch time of the timed epochs after a warm-up epoch. "
             "`gpu_check-sync-h200.log` is the run with `--sync-every-step` (the loss read every step, as the CPU "
             "loop does for divergence detection). Epoch-to-epoch spread is ±10 %, so ratios within ~0.1 of each "
             "other are not distinguishable. Output copied from the logs:", "",
             "`make gpu-check` now runs more than these logs show — PILoT and NanoAdam, every variant eager and "
             "compiled (`--compile`), and runs per hour with 1, 4 and 8 runs packed on the device (`--pack 1,4,8`) "
             "— into `docs/gpu/gpu_check-<date>.log`; it was prepared after the last lent GPU and has not run on "
             "one yet (its CPU smoke tests: tests/benchmark/test_gpu_check.py).  Beside it `make gpu-evidence` "
             "(grids/gpu-evidence.toml: random ± Sign-In ± HAM on ResNet-20 with Fashion-MNIST, 30 runs, bf16, "
             "channels-last, 8 packed on the GPU) is ready and pending a GPU; the targets of these figures head "
             "this page.", ""]
    if not logs:
        return "\n".join(lines + ["no log in docs/gpu/", ""])
    for log in logs:
        lines += [f"`{log.relative_to(ROOT)}`:", "", "```", log.read_text(encoding="utf-8").strip(), "```", ""]
    return "\n".join(lines)
