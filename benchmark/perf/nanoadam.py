"""NanoAdam against AdamW: optimiser-state memory and whole training-step time (issue 5, "Performance").

NanoAdam (reparam/nanoadam.py; Zhou et al., NeurIPS 2025) updates only the bottom-k fraction of |θ|
of each weight matrix.  Its state is AdamW's (dense-shaped moments, kept frozen outside the selection;
see the module docstring there) plus the selection itself, stored as int64 flat indices.  So the
memory figure is honest about what this implementation holds, and the time figure shows whether the
O(k) masked update pays for the gather / scatter and the periodic re-selection.

Both optimisers train LeNet-300-100 (dense: NanoAdam is a fine-tuning optimiser, no pruning mask) on
one fixed batch of 128, built the way the runner builds them (``NanoAdam.wrap_optimizer`` and its
callback).  A round is ``mask_interval`` steps, so every round contains exactly one re-selection and
the per-step time is the amortised cost.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from benchmark.perf.timing import clock, clock_name, interleaved, median, ratio


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimiser keeps (state, and NanoAdam's selection indices)."""
    total = sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
                if isinstance(v, torch.Tensor))
    for idx in getattr(opt, "selection", {}).values():
        total += idx.numel() * idx.element_size()
    return total


def _variant(base: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], optimizer: str, density: float | None,
             mask_interval: int):
    from pruners import Masks, TrainState
    from pruners.registry import build_config
    from reparam import REPARAMS

    model = copy.deepcopy(base)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0,
                                                   fused=optimizer == "adamw-fused")
    callbacks = []
    if density is not None:
        reparam = build_config(REPARAMS.get("nanoadam"), {"density": density, "mask_interval": mask_interval},
                               "nanoadam")
        reparam.apply(model, Masks.ones(model))
        opt = reparam.wrap_optimizer(opt)
        callbacks = reparam.callbacks()
    state = TrainState(model=model, optimizer=opt, masks=None, ctx=None, epochs=1, steps_per_epoch=10 ** 6)
    for cb in callbacks:
        cb.on_start(state)
    loss_fn = nn.CrossEntropyLoss()
    x, y = batch

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    step.optimizer = opt  # type: ignore[attr-defined]
    return step


def measure(quick: bool = False, densities: tuple[float, ...] = (0.01, 0.1), mask_interval: int = 100) -> dict:
    from benchmark.tasks.models import MODELS

    torch.manual_seed(0)
    base = MODELS.get("mlp")(input_shape=(1, 28, 28), num_outputs=10)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g))
    interval = 5 if quick else mask_interval
    variants = {"adamw-foreach": _variant(base, batch, "adamw", None, interval),
                "adamw-fused": _variant(base, batch, "adamw-fused", None, interval)}
    for d in densities:
        variants[f"nanoadam-{d:g}"] = _variant(base, batch, "adamw", d, interval)
    kw = dict(warmup=2, reps=2, inner=interval) if quick else dict(warmup=interval, reps=12, inner=interval)
    times = interleaved(variants, clock=clock(), **kw)
    params = sum(p.numel() * p.element_size() for p in base.parameters())
    return {"ms": {k: 1e3 * median(v) for k, v in times.items()},
            "ratio": {k: ratio(times, k, "adamw-fused") for k in times},
            "state_bytes": {k: _state_bytes(v.optimizer) for k, v in variants.items()},
            "param_bytes": params, "mask_interval": interval}


def section(quick: bool = False) -> str:
    m = measure(quick)
    lines = ["## NanoAdam vs AdamW: optimiser memory and step time", "",
             f"LeNet-300-100 (dense), batch 128, one fixed batch; NanoAdam re-selects every {m['mask_interval']} "
             "steps and a timed round is that many steps, so the re-selection is included (amortised). "
             f"Ratios to the recipes' AdamW (`fused=True`), median of interleaved rounds; {clock_name()}. "
             f"Parameters: {m['param_bytes'] / 2 ** 20:.2f} MiB.", "",
             "| optimiser | ms / step | step / AdamW (fused) | optimiser state (MiB) | state / parameters |",
             "|---|---|---|---|---|"]
    for k in m["ms"]:
        sb = m["state_bytes"][k]
        lines.append(f"| {k} | {m['ms'][k]:.2f} | **{m['ratio'][k]:.3f}** | {sb / 2 ** 20:.2f} | "
                     f"{sb / m['param_bytes']:.2f} |")
    lines += ["", "NanoAdam's state is AdamW's two dense-shaped moments (entries outside the selection keep "
              "their frozen moments, so an entry that re-enters continues from them — the choice documented in "
              "`reparam/nanoadam.py`) plus 8 bytes per selected entry for the int64 selection; it therefore holds "
              "slightly more than AdamW, not less. Its update touches only the selected entries (gather, Adam on "
              "k entries, scatter) but the forward and backward are dense, so the step time is dominated by them."]
    return "\n".join(lines) + "\n"
