"""Epoch checkpoints: a killed run resumes where it stopped and ends exactly as an uninterrupted run.

At every evaluated epoch boundary the runner writes ``<run folder>/checkpoint.pt`` atomically (temp
file, fsync, rename; only the last one is kept).  It holds everything the rest of training depends
on:

* the model's ``state_dict`` (parametrisations of a reparam included), the optimiser's and the lr
  scheduler's ``state_dict``;
* every training callback's ``state_dict()`` (the :class:`pruners.MaskEnforcer`'s masks, metric
  trackers, pruner schedules such as IMP's rewind point and tickets, reparam hooks), in callback
  order and checked by class name;
* the RNG states (Python ``random``, NumPy, torch CPU and CUDA) — the data loaders need none, they
  draw epoch ``e``'s permutation from ``(seed, e)`` (``benchmark.tasks.loader``);
* the counters (next epoch, global step, extra training FLOPs), the metric history so far and the
  training time spent.

On resume the runner rebuilds the run from its spec exactly as the first time (same seed: the same
initial masks, model and optimiser structure), calls every callback's ``on_start`` as a fresh run
does (so what a callback derives there from the run's configuration — step counts, schedule
bounds — need not be checkpointed), then loads the checkpoint into those objects and calls
``train(..., start_epoch=k)`` (which skips ``on_start``).  Contract for callbacks: every piece of
state that changes during training belongs in ``state_dict()``.  ``metrics.jsonl`` is rewritten from the checkpoint's history, so a
line written after the last checkpoint is never duplicated.  A checkpoint whose run id or spec does
not match, or that cannot be read, is ignored and the run starts over.
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from benchmark.runfolder import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states that training may consume (dropout, random growth, augmentation)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # plain tensors and numbers only, so that the checkpoint loads with weights_only=True
    state: dict[str, Any] = {"python": random.getstate(),
                             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                       float(cached)],
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _callback_key(cb: Any) -> str:
    return f"{type(cb).__module__}.{type(cb).__qualname__}"


def save_checkpoint(folder: Path, run_id: str, spec: dict, state: Any, callbacks: Sequence[Any],
                    history: list[dict], train_time_s: float) -> Path:
    """Write ``folder/checkpoint.pt`` for the end of epoch ``state.epoch`` (atomic; replaces the last)."""
    payload = {
        "format": FORMAT,
        "run_id": run_id,
        "spec": spec,
        "next_epoch": int(state.epoch) + 1,
        "step": int(state.step),
        "extra_train_flops": float(state.extra_train_flops),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "callbacks": [(_callback_key(cb), cb.state_dict()) for cb in callbacks],
        "rng": rng_state(),
        "history": list(history),
        "train_time_s": float(train_time_s),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(folder) / CHECKPOINT
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_checkpoint(folder: Path, run_id: str, spec: dict) -> dict | None:
    """The checkpoint of ``folder`` if it exists, is readable and belongs to this exact spec; else None."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        # weights_only=True: a checkpoint planted in a shared results folder cannot run code on resume
        # (everything in it is tensors, numbers, strings, lists and dicts)
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or corrupt file: start over
        return None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("run_id") != run_id:
        return None
    if json.dumps(payload.get("spec"), sort_keys=True) != json.dumps(spec, sort_keys=True):
        return None
    try:
        on_disk = json.loads((Path(folder) / "spec.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if json.dumps(on_disk, sort_keys=True) != json.dumps(spec, sort_keys=True):
        return None
    return payload


def restore(payload: dict, state: Any, callbacks: Sequence[Any]) -> None:
    """Load a checkpoint into freshly built training objects (same spec ⇒ same structure)."""
    keys = [_callback_key(cb) for cb in callbacks]
    saved = [k for k, _ in payload["callbacks"]]
    if keys != saved:
        raise RuntimeError(f"checkpoint callbacks {saved} do not match this run's {keys}")
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.scheduler is not None and payload["scheduler"] is not None:
        state.scheduler.load_state_dict(payload["scheduler"])
    for cb, (_, sd) in zip(callbacks, payload["callbacks"]):
        cb.load_state_dict(sd)
    state.epoch = payload["next_epoch"]
    state.step = payload["step"]
    state.extra_train_flops = payload["extra_train_flops"]
    set_rng_state(payload["rng"])


def remove_checkpoint(folder: Path) -> None:
    (Path(folder) / CHECKPOINT).unlink(missing_ok=True)
