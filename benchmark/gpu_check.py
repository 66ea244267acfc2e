"""GPU check (issue: performance): ResNet-20 on CIFAR-10-shaped synthetic data, dense vs masked vs
Sign-In vs HAM, bf16 autocast, channels-last, data resident on the GPU.

    python -m benchmark.gpu_check [--epochs 3] [--samples 20000] [--batch 256]

Every variant trains the same model from the same initialisation with the project's own components
(random uniform masks at 90 % sparsity through ``pruners``, the :class:`MaskEnforcer`, the Sign-In
and HAM reparams from ``reparam``) with the training loop's own step (``benchmark.train.train_step``: callbacks at the same
points).  Data stays on the device (``TensorLoader`` over GPU tensors, crop+flip on the GPU), so
loading is not the bottleneck.  Prints per-epoch times (after one warm-up epoch) and ratios to dense;
``--sync-every-step`` measures the cost of reading the loss every step (what the CPU loop does to
detect divergence at the exact step).  Finishes in about a minute on an H100.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


def variant(name: str, model: nn.Module, masks, recipe_lr: float):
    from pruners import MaskEnforcer
    from reparam import REPARAMS
    from pruners.registry import build_config

    reparam_name = {"dense": "none", "masked": "none", "signin": "signin", "ham": "ham"}[name]
    args = {"ham": {"alpha": 20.0}}.get(name, {})
    reparam = build_config(REPARAMS.get(reparam_name), args, reparam_name)
    if name != "dense":
        masks.apply_(model)
    reparam.apply(model, masks)
    enforcer = MaskEnforcer(reparam.mask_targets(model, masks), masks) if name != "dense" else None
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=recipe_lr, momentum=0.9,
                          weight_decay=1e-4)
    opt = reparam.wrap_optimizer(opt)
    return reparam, enforcer, opt


def run(args: argparse.Namespace) -> None:
    from benchmark.train import train_step
    from benchmark.tasks import TensorLoader
    from benchmark.tasks.datasets import crop_flip_augment
    from benchmark.tasks.models import MODELS
    from pruners import ALLOCATIONS, Callback, TrainState, prunable_parameters

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.backends.cudnn.benchmark = True
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (args.samples,), generator=g).to(dev)
    print(f"device: {torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'}; torch {torch.__version__}; {args.samples} samples, "
          f"batch {args.batch}, bf16 autocast, channels_last")
    results = {}
    for name in ("dense", "masked", "signin", "ham"):
        torch.manual_seed(0)
        model = MODELS.get(args.model)(input_shape=(3, 32, 32), num_outputs=10).to(dev)
        model = model.to(memory_format=torch.channels_last)
        scores = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)).to(dev)
                  for n, p in prunable_parameters(model).items()}
        masks = ALLOCATIONS.get("uniform")().masks(scores, 0.1)
        reparam, enforcer, opt = variant(name, model, masks, 0.1)
        callbacks: list[Callback] = ([enforcer] if enforcer else []) + reparam.callbacks()
        loader = TensorLoader(x, y, batch_size=args.batch, shuffle=True, seed=0, augment=crop_flip_augment(),
                              drop_last=True)
        state = TrainState(model=model, optimizer=opt, masks=enforcer, ctx=None, epochs=args.epochs + 1,
                           steps_per_epoch=len(loader), reparam=reparam)
        for cb in callbacks:
            cb.on_start(state)
        loss_fn = nn.CrossEntropyLoss()
        times = []
        for epoch in range(args.epochs + 1):
            state.epoch = epoch
            loader.set_epoch(epoch)
            for cb in callbacks:
                cb.on_epoch_start(state)
            sync()
            t0 = time.perf_counter()
            for xb, yb in loader:
                xb = xb.contiguous(memory_format=torch.channels_last)
                train_step(state, callbacks, xb, yb, loss_fn, autocast_dtype=torch.bfloat16,
                           check_loss=args.sync_every_step)
            for cb in callbacks:
                cb.on_epoch_end(state)
            sync()
            if epoch:  # epoch 0 is the warm-up (cudnn autotuning, allocator)
                times.append(time.perf_counter() - t0)
        if enforcer is not None:
            reparam.merge(model)
            w = prunable_parameters(model)
            zero_ok = all(torch.count_nonzero(w[n].detach()[~m]) == 0 for n, m in masks.items())
        else:
            zero_ok = True
        results[name] = statistics.median(times)
        print(f"{name:7s} epoch {1e3 * results[name]:8.1f} ms  (epochs {', '.join(f'{1e3 * t:.1f}' for t in times)})"
              f"  final loss {float(state.loss):.3f}  pruned weights exactly zero: {zero_ok}")
    for name in ("masked", "signin", "ham"):
        print(f"{name} / dense = {results[name] / results['dense']:.3f}")
    print(f"signin / masked = {results['signin'] / results['masked']:.3f}; "
          f"ham / masked = {results['ham'] / results['masked']:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.gpu_check")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=20000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--sync-every-step", action="store_true")
    p.add_argument("--model", default="resnet20", help="model of benchmark.tasks.models (default resnet20)")
    p.add_argument("--device", default="cuda", help="cuda (default); cpu only to smoke-test the script")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU available; run it on a machine with one", flush=True)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
