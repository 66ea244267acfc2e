"""Execute one RunSpec: spec → seed → task → pruner → reparam → train → merge → record.

:func:`execute` is the pure function of DESIGN.md: given the same spec and seed it produces the same
masks and metrics on CPU.  It writes the run folder (see ``benchmark.runfolder``) and returns the
result record (``benchmark.schema``).  Any exception inside the run is caught and recorded as
status ``failed`` with its reason (the traceback goes to the run's log.txt); a diverging loss is
recorded as ``diverged`` with its step; running out of memory (``MemoryError``,
``torch.OutOfMemoryError``) is recorded as ``failed`` with reason "out of memory".  Nothing here
raises for a failing run, so a grid goes on — except when the output folder itself cannot be written
(disk full, read-only, permission): that is :class:`benchmark.runfolder.OutputError` (a ConfigError:
one line, exit 2), since no later run could be recorded either.

Resuming (``benchmark.checkpoint``): an unfinished run folder whose ``checkpoint.pt`` matches the spec
resumes at the checkpoint's epoch and ends with the same masks, metrics and weights as an
uninterrupted run; without a usable checkpoint the folder is cleared and the run starts over.  The
checkpoint is removed once the run ends ok or diverged (kept for a failed run, so ``--retry-failed``
resumes it).
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import random
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmark.checkpoint import load_checkpoint, remove_checkpoint, restore, save_checkpoint
from benchmark.runfolder import (RESULT, atomic_write_bytes, atomic_write_json, atomic_write_torch, fsync_path,
                                 is_output_error, output_error, reset_unfinished, run_dir)
from benchmark.schema import SCHEMA_VERSION, empty_record
from benchmark.spec import RunSpec, components
from benchmark.verify import MANIFEST, manifest
from benchmark.train import build_optimizer, build_scheduler, loss_function
from pruners import Masks, PruneContext
from pruners.registry import ConfigError, build_config
from pruners.session import Diverged, Session, build_session, evaluate, fit


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Software versions, the CPU's vector instruction set torch dispatches to, and the torch intra-op
    thread count of this run (CPU results are reproducible bit for bit given the spec, this count and the
    instruction set; docs/scaling.md, "Threads")."""
    return {**_versions(), "torch_threads": str(torch.get_num_threads())}


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    """Looked up once per process: ``importlib.metadata`` scans the installed distributions (~2 ms)."""
    from importlib import metadata

    try:
        own = metadata.version("sparsebench")
    except metadata.PackageNotFoundError:
        own = "dev"
    return {"python": platform.python_version(), "torch": torch.__version__, "sparsebench": own,
            "cpu": f"{platform.processor() or platform.machine()} ({torch.backends.cpu.get_cpu_capability()})"}


def checkpoint_every() -> float:
    """Seconds between epoch checkpoints ($SPARSEBENCH_CHECKPOINT_EVERY, default 10; 0 = every epoch)."""
    import os

    raw = os.environ.get("SPARSEBENCH_CHECKPOINT_EVERY", "").strip()
    if not raw:
        return 10.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"$SPARSEBENCH_CHECKPOINT_EVERY = {raw!r} must be a number of seconds >= 0, "
                          "e.g. SPARSEBENCH_CHECKPOINT_EVERY=10 (0 = a checkpoint every epoch)")
    return value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class RunLog:
    """Appends timestamped lines to the run's log.txt."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, msg: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{now()} {msg}\n")


def base_record(spec: RunSpec, device: str = "cpu", grid: str = "") -> dict[str, Any]:
    """The identifying columns of a run's record (status and results not filled in yet)."""
    rec = empty_record()
    rec.update(run_id=spec.run_id, grid=grid, task=spec.task, pruner=spec.pruner, allocation=spec.allocation,
               pruner_args=dict(spec.pruner_args), allocation_args=dict(spec.allocation_args),
               schedule=spec.schedule, schedule_args=dict(spec.schedule_args),
               reparam=spec.reparam, reparam_args=dict(spec.reparam_args), seed=spec.seed,
               target_sparsity=spec.sparsity, optimizer=spec.recipe["optimizer"], lr=spec.recipe["lr"],
               weight_decay=spec.recipe["weight_decay"], epochs=spec.recipe["epochs"],
               batch_size=spec.recipe["batch_size"], device=str(device), versions=versions(),
               started_at=now(), spec=spec.to_dict(), schema_version=SCHEMA_VERSION)
    return rec


def record_failure(spec: RunSpec, out: str | Path, reason: str, device: str = "cpu", grid: str = "",
                   started_at: str | None = None, total_time_s: float | None = None) -> dict[str, Any]:
    """Record a run that died outside :func:`execute`'s control (worker killed, time limit, lost job).

    Writes ``result.json`` with status ``failed`` and ``reason`` (the run folder stays the source of
    truth, so ``store rebuild`` restores the failure) and returns the record.  A checkpoint is kept,
    so ``--retry-failed`` resumes the run.
    """
    folder = run_dir(Path(out), spec.run_id)
    rec = base_record(spec, device, grid)
    rec.update(status="failed", reason=reason, finished_at=now(), total_time_s=total_time_s)
    if started_at:
        rec["started_at"] = started_at
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "spec.json").exists():
            atomic_write_json(folder / "spec.json", spec.to_dict())
        RunLog(folder / "log.txt")(f"failed: {reason}")
        rec[MANIFEST] = manifest(folder)
        atomic_write_json(folder / RESULT, rec)
    except OSError as exc:
        raise output_error(Path(out), exc) from None
    return rec


def failure_reason(exc: BaseException) -> str:
    """The one-line reason recorded for a run that raised ``exc``."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return "out of memory" + (f" ({detail})" if detail else "")
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def _prepare_folder(folder: Path, spec: RunSpec) -> dict | None:
    """Make ``folder`` ready for a run: the checkpoint to resume from, or None after clearing it."""
    spec_dict = spec.to_dict()
    if (folder / RESULT).exists():  # a failed run retried: it is not done until it ends again
        (folder / RESULT).unlink()
    payload = load_checkpoint(folder, spec.run_id, spec_dict)
    if payload is None:
        reset_unfinished(folder)  # no usable checkpoint: start over
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "spec.json", spec_dict)
    return payload


def execute(spec: RunSpec, out: str | Path, device: str = "cpu", grid: str = "") -> dict[str, Any]:
    """Run ``spec`` (resuming from its checkpoint when there is one), write its folder under ``out``,
    and return its result record."""
    folder = run_dir(Path(out), spec.run_id)
    try:
        resume = _prepare_folder(folder, spec)
    except OSError as exc:
        raise output_error(Path(out), exc) from None
    log = RunLog(folder / "log.txt")
    rec = base_record(spec, device, grid)
    t_start = time.perf_counter()
    try:
        if resume is not None:
            log(f"resume {spec.label()} on {device} from the checkpoint after epoch {resume['next_epoch']}")
        else:
            log(f"start {spec.label()} on {device}")
        if torch.device(device).type == "cuda":   # this run's peak, not the worker's earlier runs'
            torch.cuda.reset_peak_memory_stats(torch.device(device))
        built = build(spec, torch.device(device), rec, log)
        history = _fit(spec, built, folder, rec, log, resume)
        _finalise(spec, built, history, folder, rec)
        rec["status"] = "ok"
        rec["reason"] = ""
    except Diverged as exc:
        rec.update(status="diverged", reason=str(exc), diverged_step=exc.step)
        log(f"diverged: {exc}")
    except Exception as exc:  # a failing run is recorded and the grid goes on
        if is_output_error(exc, Path(out)):
            raise output_error(Path(out), exc) from None
        rec.update(status="failed", reason=failure_reason(exc))
        try:
            log("failed:\n" + traceback.format_exc())
        except OSError as exc2:
            raise output_error(Path(out), exc2) from None
    rec["total_time_s"] = time.perf_counter() - t_start
    rec["finished_at"] = now()
    try:
        log(f"end status={rec['status']}")
        rec[MANIFEST] = manifest(folder)  # size and SHA-256 of each file (benchmark.verify)
        atomic_write_json(folder / RESULT, rec)
        fsync_path(folder)  # and the renames themselves (result.json's entry) are durable
        if rec["status"] != "failed":
            remove_checkpoint(folder)
    except OSError as exc:
        raise output_error(Path(out), exc) from None
    return rec


@dataclass
class Built:
    """Everything :func:`build` makes from a spec: the session and what the record needs afterwards."""

    data: Any
    recipe: Any
    pruner: Any
    session: Session
    train_loader: Any
    test_loader: Any
    loss_fn: Callable
    classification: bool
    macs: dict
    flops: Any
    flips: Any
    anytime: Any


def _prune_batches(data: Any, train_loader: Any, seed: int, batch_size: int, device: torch.device):
    """``batches(n)`` of the PruneContext: the first ``n`` samples of a fixed seeded permutation of the
    training set (folder datasets: the training loader's batches of a fixed epoch)."""
    from benchmark.tasks import TensorLoader

    def batches(n_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x, y = data.train_x, data.train_y
        if x is None:
            out, got = [], 0
            for xb, yb in train_loader:
                out.append((xb.to(device), yb.to(device)))
                got += len(yb)
                if got >= n_samples:
                    break
            return out
        g = torch.Generator().manual_seed(seed + 7)
        idx = torch.randperm(len(y), generator=g)[: min(n_samples, len(y))]
        return list(TensorLoader(x[idx].to(device), y[idx].to(device), batch_size=batch_size, shuffle=False,
                                 seed=seed))
    return batches


def build(spec: RunSpec, device: torch.device, rec: dict, log: RunLog) -> Built:
    """spec → seed → task data and model → initial masks (timed) → the training session."""
    from benchmark.metrics import AnytimeAccuracy, FlopsTracker, SignFlipTracker, forward_backward_seconds, layer_macs
    from benchmark.tasks import build_model, cached_data, make_loaders
    from benchmark.tasks.base import Recipe

    recipe = build_config(Recipe, dict(spec.recipe), "recipe")
    pruner, allocation, reparam = components(spec)
    rec.update(dataset=spec.dataset, model=spec.model, pruner_family=pruner.run_family,
               learned_sparsity=bool(pruner.learned_sparsity))

    data = cached_data(spec.dataset, spec.dataset_args)
    seed_everything(spec.seed)
    model = build_model(spec).to(device)
    if recipe.channels_last:   # parameters keep their identity: masks, optimiser and reparams see the same ones
        model = model.to(memory_format=torch.channels_last)
    train_loader, test_loader = make_loaders(data, batch_size=recipe.batch_size,
                                             eval_batch_size=recipe.eval_batch_size, seed=spec.seed,
                                             device=device, max_train_batches=recipe.max_train_batches)
    loss_fn = loss_function(recipe)
    ctx = PruneContext(seed=spec.seed, batches=_prune_batches(data, train_loader, spec.seed, recipe.batch_size, device),
                       loss_fn=loss_fn, device=device, num_classes=data.info.num_outputs,
                       input_shape=tuple(data.info.input_shape), prune_batch_size=recipe.batch_size)

    # masks at initialisation, timed (also in forward-backward units)
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

    steps_per_epoch = len(train_loader)
    flops = FlopsTracker(macs)
    flips = SignFlipTracker(lambda: reparam.effective_weights(model))
    classification = data.info.task_type == "classification"
    anytime = AnytimeAccuracy(recipe.eval_at_steps, lambda: evaluate(model, test_loader, loss_fn, classification))
    session = build_session(
        model, masks, lambda params: build_optimizer(params, recipe), reparam=reparam, pruner=pruner,
        allocation=allocation, sparsity=spec.sparsity, callbacks=[flops, flips] + ([anytime] if recipe.eval_at_steps else []),
        ctx=ctx,
        scheduler=lambda opt: build_scheduler(opt, recipe, steps_per_epoch,
                                              cycle_epochs=pruner.lr_cycle_epochs(recipe.epochs, spec.sparsity)),
        epochs=pruner.total_epochs(recipe.epochs, spec.sparsity), steps_per_epoch=steps_per_epoch)
    rec["versions"]["compile"] = compile_model(model, device)
    return Built(data=data, recipe=recipe, pruner=pruner, session=session, train_loader=train_loader,
                 test_loader=test_loader, loss_fn=loss_fn, classification=classification,
                 macs=macs, flops=flops, flips=flips, anytime=anytime)


COMPILE_ENV = "SPARSEBENCH_COMPILE"
"""``sparsebench run --compile`` sets it to 1 for the grid's workers (local executor; on Ray / Slurm set
it in the jobs' environment)."""


def compile_model(model: torch.nn.Module, device: torch.device) -> str:
    """Opt-in ``torch.compile`` of the model's forward (``$SPARSEBENCH_COMPILE=1``), in place
    (``nn.Module.compile``: the same module, parameters and state-dict keys, so masks, reparams and
    checkpoints are unchanged).  Only on CUDA: on the CPU the run stays eager and says so.  Recorded in
    the run's ``versions``, not in its id — results agree with eager within float tolerance.
    Returns what was done: ``"off"``, ``"torch.compile"`` or ``"eager on cpu (requested)"``."""
    if os.environ.get(COMPILE_ENV, "") not in ("1", "true", "yes"):
        return "off"
    if torch.device(device).type != "cuda":
        return f"eager on {torch.device(device).type} (requested; compile is used on CUDA only)"
    model.compile()
    return "torch.compile"


def _fit(spec: RunSpec, b: Built, folder: Path, rec: dict, log: RunLog, resume: dict | None) -> list[dict[str, Any]]:
    """Train the session, appending each evaluated epoch to metrics.jsonl and checkpointing every
    $SPARSEBENCH_CHECKPOINT_EVERY seconds; a resume restores the checkpoint first.  Returns the history."""
    state, callbacks = b.session.state, b.session.callbacks
    metrics_path = folder / "metrics.jsonl"
    done: list[dict[str, Any]] = []       # metrics of epochs finished before a resume
    trained_before, start_epoch = 0.0, 0
    if resume is not None:
        # replay the fresh start (on_start derives each callback's configuration), then overwrite
        # every piece of mutable state with the checkpoint's
        b.session.start()
        restore(resume, state, callbacks)
        done, trained_before, start_epoch = list(resume["history"]), resume["train_time_s"], resume["next_epoch"]
        # lines written after the checkpoint are dropped, so none is duplicated
        atomic_write_bytes(metrics_path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in done).encode())
    else:
        metrics_path.unlink(missing_ok=True)
    t_train = time.perf_counter()
    last_checkpoint = [time.perf_counter()]

    def on_epoch(m: dict[str, Any]) -> None:
        with open(metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(m, sort_keys=True) + "\n")
        log(f"epoch {m['epoch']}: " + ", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)))
        done.append(m)
        # the last epoch ends in result.json instead; short runs are not worth a checkpoint per epoch
        if m["epoch"] < state.epochs and time.perf_counter() - last_checkpoint[0] >= checkpoint_every():
            save_checkpoint(folder, spec.run_id, spec.to_dict(), state, callbacks, done,
                            trained_before + time.perf_counter() - t_train)
            last_checkpoint[0] = time.perf_counter()

    fit(b.session, b.train_loader, b.loss_fn, test_batches=b.test_loader, classification=b.classification,
        on_epoch=on_epoch, start_epoch=start_epoch, eval_every=b.recipe.eval_every,
        autocast_dtype=torch.bfloat16 if b.recipe.precision == "bf16" else None)
    rec["train_time_s"] = trained_before + time.perf_counter() - t_train
    if metrics_path.exists():
        fsync_path(metrics_path)  # appended line by line; durable before result.json too
    return done


def _finalise(spec: RunSpec, b: Built, history: list[dict[str, Any]], folder: Path, rec: dict) -> None:
    """Merge the reparam, write masks / artefacts / model, and fill the record's final measurements."""
    from benchmark.metrics import inference_flops
    from pruners.connectivity import connectivity  # effective sparsity (Vysogorets & Kempe 2023)
    from pruners.plugins import plugin_extra  # a plugin pruner's name, version, author, URL (docs/plugins.md)

    session, pruner = b.session, b.pruner
    model = session.model
    session.reparam.merge(model)
    final = session.masks
    if pruner.learned_sparsity:
        final = final.intersection(Masks.from_model_nonzero(model))
    # each file atomically (temp file, fsync, rename) before result.json; a few milliseconds a run
    final.save(folder / "masks.pt", False)  # no masks.pt.json: result.json has the densities
    for name, art in pruner.artifacts().items():  # e.g. IMP's ticket masks per round and rewind weights
        if isinstance(art, Masks):
            art.save(folder / f"{name}.pt", False)
        else:
            atomic_write_torch(folder / f"{name}.pt", {k: v.detach().cpu() for k, v in dict(art).items()})
    atomic_write_torch(folder / "model.pt", {k: v.detach().cpu() for k, v in model.state_dict().items()})
    last = dict(history[-1])
    # Final metrics are those of the saved model: a schedule may change the network after the last
    # epoch's evaluation (e.g. a one-shot prune in on_end, STR / CS folding), so evaluate once more.
    last.update(evaluate(model, b.test_loader, b.loss_fn, b.classification))
    rec.update(
        achieved_sparsity=final.sparsity(), layer_density=final.layer_density(),
        collapsed_layers=final.collapsed_layers(), collapse=bool(final.collapsed_layers()),
        final_test_loss=last["test_loss"], final_train_loss=last["train_loss"],
        final_top1=last.get("test_top1"),
        best_top1=max((h["test_top1"] for h in history), default=None) if b.classification else None,
        flops_dense=b.flops.dense, flops_sparse=inference_flops(b.macs, final),
        train_flops_rel=b.flops.train_flops_rel(session.state.extra_train_flops),
    )
    rec["anytime_top1"] = {str(k): v for k, v in sorted(b.anytime.top1.items())}
    rec["inference_flops_rel"] = rec["flops_sparse"] / rec["flops_dense"] if rec["flops_dense"] else None
    flips_layer = b.flips.counts(final)
    rec.update(sign_flips=sum(flips_layer.values()), sign_flips_layer=flips_layer)
    conn = connectivity(model, final, input_shape=session.state.ctx.input_shape)
    rec.update(effective_sparsity=conn["effective_sparsity"], dead_neurons=conn["dead_neurons"],
               disconnected=bool(conn["disconnected"]))
    extra = getattr(pruner, "extra_results", None)
    rec["extra"] = {**(extra() if callable(extra) else {}), **plugin_extra(spec.pruner),
                    "connectivity": {k: conn[k] for k in ("effective_layer_density", "dead_neurons_layer",
                                                          "collapsed_layers")}}
    dev = next(model.parameters()).device
    if dev.type == "cuda":   # memory per run, for packing several runs on one GPU (docs/scaling.md)
        rec["extra"]["cuda_peak_memory_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    if spec.analysis.get("sparse_latency"):  # measured CSR vs dense inference on one test batch (CPU)
        from benchmark.sparse_export import sparse_speedup

        rec["sparse_speedup"] = sparse_speedup(model, final, next(iter(b.test_loader))[0])["speedup"]
    if spec.analysis.get("graphon"):  # per-layer graphon statistics + NTK metrics on a fixed batch (MLPs)
        from benchmark.analysis import run_graphon_summary

        rec["graphon"] = run_graphon_summary(final, b.data)
