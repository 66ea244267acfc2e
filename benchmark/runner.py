"""Execute one RunSpec: spec → seed → task → pruner → reparam → train → merge → record.

:func:`execute` is the pure function of DESIGN.md: given the same spec and seed it produces the same
masks and metrics on CPU.  It writes the run folder (see ``benchmark.runfolder``) and returns the
result record (``benchmark.schema``).  Any exception inside the run is caught and recorded as
status ``failed`` with its reason (the traceback goes to the run's log.txt); a diverging loss is
recorded as ``diverged`` with its step.  Nothing here raises for a failing run, so a grid goes on.
"""
from __future__ import annotations

import datetime as _dt
import functools
import io
import json
import platform
import random
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.runfolder import RESULT, atomic_write_bytes, atomic_write_json, reset_unfinished, run_dir
from benchmark.schema import SCHEMA_VERSION, empty_record
from benchmark.spec import RunSpec
from benchmark.train import Diverged, build_optimizer, build_scheduler, loss_function, train
from pruners import ALLOCATIONS, PRUNERS, MaskEnforcer, Masks, PruneContext, TrainState
from pruners.registry import build_config
from reparam import REPARAMS


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    from importlib import metadata

    try:
        own = metadata.version("sparsebench")
    except metadata.PackageNotFoundError:
        own = "dev"
    return {"python": platform.python_version(), "torch": torch.__version__, "sparsebench": own}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@functools.lru_cache(maxsize=4)
def _cached_data(dataset: str, args_json: str):
    from benchmark.tasks import load_data

    return load_data(dataset, **json.loads(args_json))


def load_task_data(task):
    """Load (and cache per process) the task's dataset: grids run many specs on one dataset."""
    return _cached_data(task.dataset, json.dumps(dict(task.dataset_args), sort_keys=True))


class RunLog:
    """Appends timestamped lines to the run's log.txt."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, msg: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{now()} {msg}\n")


def execute(spec: RunSpec, out: str | Path, device: str = "cpu", grid: str = "") -> dict[str, Any]:
    """Run ``spec``, write its folder under ``out``, and return its result record."""
    folder = run_dir(Path(out), spec.run_id)
    reset_unfinished(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "spec.json", spec.to_dict())
    log = RunLog(folder / "log.txt")
    rec = empty_record()
    rec.update(run_id=spec.run_id, grid=grid, task=spec.task, pruner=spec.pruner, allocation=spec.allocation,
               pruner_args=dict(spec.pruner_args), allocation_args=dict(spec.allocation_args),
               reparam=spec.reparam, reparam_args=dict(spec.reparam_args), seed=spec.seed,
               target_sparsity=spec.sparsity, optimizer=spec.recipe["optimizer"], lr=spec.recipe["lr"],
               weight_decay=spec.recipe["weight_decay"], epochs=spec.recipe["epochs"],
               batch_size=spec.recipe["batch_size"], device=str(device), versions=versions(),
               started_at=now(), spec=spec.to_dict(), schema_version=SCHEMA_VERSION)
    t_start = time.perf_counter()
    log(f"start {spec.label()} on {device}")
    try:
        _train_run(spec, folder, torch.device(device), rec, log)
        rec["status"] = "ok"
        rec["reason"] = ""
    except Diverged as exc:
        rec.update(status="diverged", reason=str(exc), diverged_step=exc.step)
        log(f"diverged: {exc}")
    except Exception as exc:  # a failing run is recorded and the grid goes on
        rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        log("failed:\n" + traceback.format_exc())
    rec["total_time_s"] = time.perf_counter() - t_start
    rec["finished_at"] = now()
    log(f"end status={rec['status']}")
    atomic_write_json(folder / RESULT, rec)
    return rec


def _train_run(spec: RunSpec, folder: Path, device: torch.device, rec: dict, log: RunLog) -> None:
    from benchmark.metrics import FlopsTracker, SignFlipTracker, forward_backward_seconds, inference_flops, layer_macs
    from benchmark.tasks import build_model, get_task, make_loaders
    from benchmark.tasks.base import Recipe

    task = get_task(spec.task)
    recipe = build_config(Recipe, dict(spec.recipe), "recipe")
    rec.update(dataset=task.dataset, model=task.model)
    pruner = build_config(PRUNERS.get(spec.pruner), dict(spec.pruner_args), f"pruner {spec.pruner!r}")
    allocation = build_config(ALLOCATIONS.get(spec.allocation), dict(spec.allocation_args),
                              f"allocation {spec.allocation!r}")
    reparam = build_config(REPARAMS.get(spec.reparam), dict(spec.reparam_args), f"reparam {spec.reparam!r}")
    rec.update(pruner_family=pruner.family, learned_sparsity=bool(pruner.learned_sparsity))

    data = load_task_data(task)
    seed_everything(spec.seed)
    model = build_model(task).to(device)
    train_loader, test_loader = make_loaders(data, batch_size=recipe.batch_size,
                                             eval_batch_size=recipe.eval_batch_size, seed=spec.seed,
                                             device=device, max_train_batches=recipe.max_train_batches)
    loss_fn = loss_function(recipe)
    classification = data.info.task_type == "classification"

    def prune_batches(n_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n_samples`` of a fixed seeded permutation of the training set."""
        from benchmark.tasks import TensorLoader

        x, y = data.train_x, data.train_y
        if x is None:  # folder datasets: draw from the training loader of a fixed epoch
            out, got = [], 0
            for xb, yb in train_loader:
                out.append((xb.to(device), yb.to(device)))
                got += len(yb)
                if got >= n_samples:
                    break
            return out
        g = torch.Generator().manual_seed(spec.seed + 7)
        idx = torch.randperm(len(y), generator=g)[: min(n_samples, len(y))]
        loader = TensorLoader(x[idx].to(device), y[idx].to(device), batch_size=recipe.batch_size,
                              shuffle=False, seed=spec.seed)
        return list(loader)

    ctx = PruneContext(seed=spec.seed, batches=prune_batches, loss_fn=loss_fn, device=device,
                       num_classes=data.info.num_outputs, input_shape=tuple(data.info.input_shape),
                       prune_batch_size=recipe.batch_size)

    # 1. masks at initialisation (timed, also in forward-backward units)
    t0 = time.perf_counter()
    masks = pruner.initial_masks(model, ctx, spec.sparsity, allocation)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rec["mask_time_s"] = time.perf_counter() - t0
    masks.validate(model)
    xb, yb = next(iter(train_loader))
    fb = forward_backward_seconds(model, xb, yb, loss_fn)
    rec["mask_time_fb"] = rec["mask_time_s"] / fb if fb > 0 else None
    macs = layer_macs(model, xb)
    log(f"initial masks: density {masks.density():.6f} in {rec['mask_time_s']:.3f}s")

    # 2. reparam, optimiser, callbacks
    masks.apply_(model)
    reparam.apply(model, masks)
    enforcer = MaskEnforcer(reparam.mask_targets(model, masks), masks)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], recipe)
    optimizer = reparam.wrap_optimizer(optimizer)
    steps_per_epoch = len(train_loader)
    epochs = pruner.total_epochs(recipe.epochs, spec.sparsity)
    scheduler = build_scheduler(getattr(optimizer, "base_optimizer", optimizer), recipe, steps_per_epoch,
                                cycle_epochs=pruner.lr_cycle_epochs(recipe.epochs, spec.sparsity))
    flops = FlopsTracker(macs)
    flips = SignFlipTracker(lambda: reparam.effective_weights(model))
    callbacks = [enforcer, *reparam.callbacks(), *pruner.callbacks(spec.sparsity, allocation), flops, flips]
    state = TrainState(model=model, optimizer=optimizer, masks=enforcer, ctx=ctx, epochs=epochs,
                       steps_per_epoch=steps_per_epoch, scheduler=scheduler, reparam=reparam)

    metrics_path = folder / "metrics.jsonl"

    def on_epoch(m: dict[str, Any]) -> None:
        with open(metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(m, sort_keys=True) + "\n")
        log(f"epoch {m['epoch']}: " + ", ".join(f"{k}={v:.4g}" for k, v in m.items()
                                               if isinstance(v, float)))

    t_train = time.perf_counter()
    history = train(state, train_loader, test_loader, callbacks, loss_fn, classification, on_epoch,
                    eval_every=recipe.eval_every)
    rec["train_time_s"] = time.perf_counter() - t_train

    # 3. merge, final masks, record
    reparam.merge(model)
    final = enforcer.masks
    if pruner.learned_sparsity:
        final = final.intersection(Masks.from_model_nonzero(model))
    final.save(folder / "masks.pt")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(folder / "model.pt", buf.getvalue())
    last = history[-1]
    rec.update(
        achieved_sparsity=final.sparsity(), layer_density=final.layer_density(),
        collapsed_layers=final.collapsed_layers(), collapse=bool(final.collapsed_layers()),
        final_test_loss=last["test_loss"], final_train_loss=last["train_loss"],
        final_top1=last.get("test_top1"),
        best_top1=max((h["test_top1"] for h in history), default=None) if classification else None,
        flops_dense=flops.dense, flops_sparse=inference_flops(macs, final),
        train_flops_rel=flops.train_flops_rel(state.extra_train_flops),
    )
    rec["inference_flops_rel"] = rec["flops_sparse"] / rec["flops_dense"] if rec["flops_dense"] else None
    flips_layer = flips.counts(final)
    rec.update(sign_flips=sum(flips_layer.values()), sign_flips_layer=flips_layer)
    extra = getattr(pruner, "extra_results", None)
    rec["extra"] = extra() if callable(extra) else {}
    if spec.analysis.get("graphon"):
        from graphon.summary import summarize_masks

        rec["graphon"] = summarize_masks(final)
