"""Timing of the reparams' training steps against their plain counterparts (issue 5 targets).

* Sign-In / PILoT (θ = m ⊙ w via ``torch.nn.utils.parametrize``, with the fused native factor step of
  :mod:`reparam.factor_step` under SGD) vs the plain step: target ≤ 1.3×;
* HAM vs its base optimiser (SGD with momentum, and AdamW — fused as the recipes build it, and
  torch's for-loop AdamW for comparison): target ≤ 1.10×;
* NanoAdam vs AdamW: step time and optimiser-state memory.

Setting: LeNet-300-100 (784-300-100-10 MLP), batch 128 of random inputs, a uniform random mask of
90 % sparsity kept by the :class:`pruners.MaskEnforcer` in every variant (so the comparison is of the
reparam alone), ``torch.set_num_threads(threads)``.  Each variant has its own model and optimiser;
after a warm-up, blocks of ``steps`` steps of every variant are timed in interleaved order, ``reps``
times, and the ratio of medians is reported.  Run ``python -m benchmark.bench_reparam``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from benchmark.train import train_step
from pruners import MaskEnforcer, Masks, TrainState, prunable_parameters
from reparam import REPARAMS
from pruners.registry import build_config


def lenet300() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def random_masks(model: nn.Module, density: float, seed: int = 0) -> Masks:
    g = torch.Generator().manual_seed(seed)
    return Masks({n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model).items()})


OPTIMIZERS = ("sgd", "adamw", "adamw-loop")


def build_variant_optimizer(optimizer: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser of a variant, built as the recipes build it (:func:`benchmark.train.build_optimizer`:
    SGD momentum 0.9 at lr 0.01; AdamW at lr 1e-3 without weight decay, torch's fused kernel), so the
    ratios are those of real runs.  ``adamw-loop`` is torch's default for-loop AdamW, for comparison."""
    from benchmark.tasks.base import Recipe
    from benchmark.train import build_optimizer

    if optimizer == "sgd":
        return build_optimizer(params, Recipe(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0))
    if optimizer == "adamw":
        return build_optimizer(params, Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.0))
    if optimizer == "adamw-loop":
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0, foreach=False)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")


#: Models of the benchmark: name -> (factory, one input's shape).
MODEL_SHAPES = {"lenet300": (1, 28, 28), "lenet5": (1, 28, 28), "resnet20": (3, 32, 32)}


def build_bench_model(name: str) -> nn.Module:
    """``lenet300`` (the 784-300-100-10 MLP above) or a suite model by name (``lenet5``, ``resnet20``;
    :data:`benchmark.tasks.models.MODELS`) with 10 outputs for inputs of :data:`MODEL_SHAPES`."""
    if name == "lenet300":
        return lenet300()
    from benchmark.tasks.models import MODELS

    return MODELS.get(name)(input_shape=MODEL_SHAPES[name], num_outputs=10)


def make_variant(reparam: str, args: dict, optimizer: str, density: float, batch: tuple,
                 model_name: str = "lenet300", kernel: str = "auto") -> Callable[[], None]:
    """A closure doing one full training step (forward, backward, callbacks, step) of the variant;
    ``kernel = "eager"`` turns a reparam's native fused path off (Sign-In / PILoT / spred: the plain
    parametrisation; HAM: the eager mirror step), to time both side by side."""
    torch.manual_seed(0)
    model = build_bench_model(model_name)
    masks = random_masks(model, density)
    masks.apply_(model)
    rp = build_config(REPARAMS.get(reparam), args, reparam)
    if kernel != "auto":
        rp.kernel = kernel   # instance attribute, not a config field (reparam/factorized.py)
    rp.apply(model, masks)
    enforcer = MaskEnforcer(rp.mask_targets(model, masks), masks)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = rp.wrap_optimizer(build_variant_optimizer(optimizer, params))
    if kernel != "auto" and hasattr(opt, "kernel"):
        opt.kernel = kernel   # HamOptimizer's switch
    callbacks = [enforcer, *rp.callbacks()]
    state = TrainState(model=model, optimizer=opt, masks=enforcer, ctx=None, epochs=1000,  # type: ignore[arg-type]
                       steps_per_epoch=1000, reparam=rp)
    for cb in callbacks:
        cb.on_start(state)
    x, y = batch

    def step() -> None:
        train_step(state, callbacks, x, y, F.cross_entropy, check_loss=False)

    step.model, step.optimizer, step.state = model, opt, state  # type: ignore[attr-defined]
    return step


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of optimiser state tensors (plus NanoAdam's selection indices)."""
    total = 0
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, torch.Tensor):
                total += v.numel() * v.element_size()
    for idx in getattr(opt, "selection", {}).values():
        total += idx.numel() * idx.element_size()
    return total


def interleaved(variants: dict[str, Callable[[], None]], steps: int, reps: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of each variant, blocks interleaved."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--density", type=float, default=0.1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g))

    sgd = {
        "plain": make_variant("none", {}, "sgd", args.density, batch),
        "signin": make_variant("signin", {}, "sgd", args.density, batch),
        "pilot": make_variant("pilot", {"alpha": 1e-4}, "sgd", args.density, batch),
        "ham": make_variant("ham", {}, "sgd", args.density, batch),
    }
    adam = {
        "adamw": make_variant("none", {}, "adamw", args.density, batch),
        "ham+adamw": make_variant("ham", {"alpha": 1.0}, "adamw", args.density, batch),
        "adamw-loop": make_variant("none", {}, "adamw-loop", args.density, batch),
        "ham+adamw-loop": make_variant("ham", {"alpha": 1.0}, "adamw-loop", args.density, batch),
        "nanoadam": make_variant("nanoadam", {"density": 0.01}, "adamw", args.density, batch),
    }
    t_sgd = interleaved(sgd, args.steps, args.reps, args.warmup)
    t_adam = interleaved(adam, args.steps, args.reps, args.warmup)
    ratios = {
        "signin/plain": t_sgd["signin"] / t_sgd["plain"],
        "pilot/plain": t_sgd["pilot"] / t_sgd["plain"],
        "ham+sgd/sgd": t_sgd["ham"] / t_sgd["plain"],
        "ham+adamw/adamw": t_adam["ham+adamw"] / t_adam["adamw"],
        "ham+adamw-loop/adamw-loop": t_adam["ham+adamw-loop"] / t_adam["adamw-loop"],
        "nanoadam/adamw": t_adam["nanoadam"] / t_adam["adamw"],
    }
    mem = {"adamw": state_bytes(adam["adamw"].optimizer),  # type: ignore[attr-defined]
           "nanoadam": state_bytes(adam["nanoadam"].optimizer)}  # type: ignore[attr-defined]
    print(f"LeNet-300-100, batch 128, {args.threads} threads, mask density {args.density}, "
          f"{args.reps} interleaved reps x {args.steps} steps after {args.warmup} warm-up steps")
    for k, v in {**t_sgd, **t_adam}.items():
        print(f"  {k:14s} {v * 1e3:8.3f} ms/step")
    for k, v in ratios.items():
        print(f"  {k:26s} {v:6.3f}x")
    print(f"  optimiser state: adamw {mem['adamw'] / 1e6:.3f} MB, nanoadam {mem['nanoadam'] / 1e6:.3f} MB "
          "(dense moments + selection indices)")
    return ratios


if __name__ == "__main__":
    main()
