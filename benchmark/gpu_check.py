"""GPU check (issue 22): ResNet-20 on CIFAR-10-shaped synthetic data, dense vs masked vs Sign-In vs
PILoT vs HAM vs NanoAdam, eager and ``torch.compile``-d, bf16 autocast, channels-last, data resident on
the GPU; then runs per hour with 1, 4 and 8 masked runs packed on the device.

    python -m benchmark.gpu_check [--epochs 3] [--samples 20000] [--batch 256] [--compile] [--pack 1,4,8]
    make gpu-check          # all of it, one log under docs/gpu/ (about 8 minutes on an H100 / H200)

Every variant trains the same model from the same initialisation through the suite's session and loop
(:func:`pruners.session.build_session`, :func:`pruners.session.fit`: random uniform masks at 90 %
sparsity, the enforcer, the Sign-In and HAM reparams).  Data stays on the device (``TensorLoader`` over GPU tensors, crop+flip on the GPU), so
loading is not the bottleneck.  Prints per-epoch times (after one warm-up epoch) and ratios to dense;
``--sync-every-step`` measures the cost of reading the loss every step (what the CPU loop does to
detect divergence at the exact step).  ``--compile`` repeats every variant with the model compiled in
place (``nn.Module.compile``).  ``--pack 1,4,8`` starts that many copies of the masked run as separate
processes at once (``--worker``) and reports runs per hour and the throughput against one run.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn


VARIANTS = {"dense": ("none", {}), "masked": ("none", {}), "signin": ("signin", {}), "pilot": ("pilot", {}),
            "ham": ("ham", {"alpha": 20.0}), "nanoadam": ("nanoadam", {})}


def run(args: argparse.Namespace) -> None:
    from benchmark.tasks import TensorLoader
    from benchmark.tasks.datasets import crop_flip_augment
    from benchmark.tasks.models import MODELS
    from pruners import ALLOCATIONS, prunable_parameters
    from pruners.registry import build_config
    from pruners.session import build_session, fit
    from reparam import REPARAMS

    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g).to(dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.samples,), generator=g).to(dev)
    print(f"device: {torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'}; torch {torch.__version__}; "
          f"{args.samples} samples, batch {args.batch}, bf16 autocast, channels_last")
    results = {}
    modes = ["eager", "compiled"] if args.compile and dev.type == "cuda" else ["eager"]
    variants = [args.only] if args.only else list(VARIANTS)
    for mode, name in ((m, n) for m in modes for n in variants):
        reparam_name, reparam_args = VARIANTS[name]
        torch.manual_seed(0)
        model = MODELS.get(args.model)(input_shape=(3, 32, 32), num_outputs=10).to(dev)
        model = model.to(memory_format=torch.channels_last)
        if mode == "compiled":
            model.compile()
        masks = None
        if name != "dense":
            scores = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)).to(dev)
                      for n, p in prunable_parameters(model).items()}
            masks = ALLOCATIONS.get("uniform")().masks(scores, 0.1)
        reparam = build_config(REPARAMS.get(reparam_name), reparam_args, reparam_name)
        loader = TensorLoader(x, y, batch_size=args.batch, shuffle=True, seed=0, augment=crop_flip_augment(),
                              drop_last=True)
        session = build_session(model, masks, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
                                reparam=reparam, epochs=args.epochs + 1, steps_per_epoch=len(loader))
        history = fit(session, loader, nn.functional.cross_entropy, check_loss=args.sync_every_step,
                      autocast_dtype=torch.bfloat16)
        times = [h["epoch_train_time_s"] for h in history[1:]]   # epoch 0 is the warm-up (cudnn autotuning)
        zero_ok = True
        if masks is not None:
            reparam.merge(model)
            w = prunable_parameters(model)
            zero_ok = all(int(torch.count_nonzero(w[n].detach()[~m])) == 0 for n, m in session.masks.items())
        results[mode, name] = statistics.median(times)
        print(f"{name:8s} {mode:8s} epoch {1e3 * results[mode, name]:8.1f} ms  "
              f"(epochs {', '.join(f'{1e3 * t:.1f}' for t in times)})"
              f"  final loss {float(session.state.loss):.3f}  pruned weights exactly zero: {zero_ok}")
    if args.only:
        return
    for mode in modes:
        for name in variants[1:]:
            print(f"{mode}: {name} / dense = {results[mode, name] / results[mode, 'dense']:.3f}")
        for name in ("signin", "pilot", "ham", "nanoadam"):
            print(f"{mode}: {name} / masked = {results[mode, name] / results[mode, 'masked']:.3f}")
    if "compiled" in modes:
        for name in variants:
            print(f"compiled / eager, {name}: {results['compiled', name] / results['eager', name]:.3f}")
    if args.pack:
        pack(args)


def pack(args: argparse.Namespace) -> None:
    """Runs per hour with k copies of the masked run at once on the device, each its own process."""
    import subprocess
    import sys
    import time

    base = None
    for k in args.pack:
        cmd = [sys.executable, "-m", "benchmark.gpu_check", "--only", "masked", "--epochs", str(args.epochs),
               "--samples", str(args.samples), "--batch", str(args.batch), "--model", args.model,
               "--device", args.device]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(k)]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        per_hour = 3600.0 * k / wall
        base = base or per_hour
        print(f"pack {k}: {k} runs in {wall:.1f} s wall (exit codes {sorted(set(codes))}): {per_hour:.0f} runs/hour, "
              f"{per_hour / base:.2f}x the throughput of 1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.gpu_check")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=20000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--sync-every-step", action="store_true")
    p.add_argument("--model", default="resnet20", help="model of benchmark.tasks.models (default resnet20)")
    p.add_argument("--device", default="cuda", help="cuda (default); cpu only to smoke-test the script")
    p.add_argument("--compile", action="store_true", help="also every variant with the model compiled")
    p.add_argument("--pack", default="", help="comma-separated numbers of runs packed at once, e.g. 1,4,8")
    p.add_argument("--only", default=None, choices=list(VARIANTS), help=argparse.SUPPRESS)  # a packed copy
    args = p.parse_args(argv)
    args.pack = [int(k) for k in args.pack.split(",") if k.strip()]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU available; run it on a machine with one", flush=True)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
