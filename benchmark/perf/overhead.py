"""Framework overhead per run on ``digits-mlp`` (target ≤ 5 % of the run time).

Runs :func:`benchmark.runner.execute` in this process on several ``digits-mlp`` specs (magnitude pruning at
90 %, global allocation, default recipe: 15 epochs) into a temporary folder, and times the parts of a run
by wrapping the functions the runner calls (the wrappers only read the clock):

* *training*: the training loop, per-epoch evaluation included, minus the per-epoch checkpoints written
  from inside it;
* *final evaluation*: the evaluation of the saved model;
* *masks*: the pruner's initial masks (method cost, reported apart — ``mask_time_fb`` covers it);
* *framework overhead*: everything else — data (cached per process after the first run), model build,
  the forward-backward timing unit, layer MAC counting, per-epoch checkpoints, connectivity, writing
  the run folder's files (waiting for the background writer included), metrics and log files, the
  result record.

The run folder's files other than result.json are written (temp file, fsync, rename) by a writer thread
(``benchmark.runfolder.BackgroundWrites``) while the run goes on; the runner waits for it before
result.json.  Only time on the run's own thread counts: the writer's work is listed apart ("writer
thread, overlapped") and not added, its cost to the run is the "waiting for the writer" row.

The figure is overhead / total run time (``total_time_s``, the record's own clock), the median over the
runs after the first (whose dataset load is paid once per worker process in a grid); the median, not the
mean, because on a shared machine single runs catch the other jobs' bursts.  The same over the wall time of
``execute()`` — which also holds the folder preparation and result.json with its fsync — is reported beside.
"""
from __future__ import annotations

import contextlib
import functools
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterator

TARGET = 0.05


#: Suffix of the parts timed on the background writer thread (they overlap the run: not added up).
OVERLAPPED = " (writer thread, overlapped)"
#: Inline atomic writes on the run's thread: result.json, after the run's clock stops — in the execute()
#: wall figure, not in ``total_time_s`` (a checkpoint's write, when there is one, also lands here; it is
#: inside the "checkpoints" part already, so this row is never added up).
RESULT_WRITE = "result.json, written after the run's clock"


@contextlib.contextmanager
def _timed(parts: dict[str, float], patches: list[tuple[Any, str, str | tuple[str, str]]]) -> Iterator[None]:
    """Wrap ``getattr(obj, attr)`` so its wall time is added to ``parts[label]``.  ``label`` may be a
    pair (calls on the main thread, calls on another thread); a single label gets ``OVERLAPPED``
    appended for calls on another thread (the run's writer threads)."""
    saved = []
    for obj, attr, label in patches:
        fn = getattr(obj, attr)
        saved.append((obj, attr, fn))
        on_main, elsewhere = label if isinstance(label, tuple) else (label, label + OVERLAPPED)

        def wrapper(*a: Any, __fn: Callable = fn, __labels: tuple[str, str] = (on_main, elsewhere),
                    **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return __fn(*a, **k)
            finally:
                main = threading.current_thread() is threading.main_thread()
                parts[__labels[0] if main else __labels[1]] += time.perf_counter() - t0

        functools.update_wrapper(wrapper, fn)
        setattr(obj, attr, wrapper)
    try:
        yield
    finally:
        for obj, attr, fn in reversed(saved):
            setattr(obj, attr, fn)


def measure(runs: int = 8, epochs: int | None = None) -> dict[str, Any]:
    """Time ``runs`` runs after a first one; per part the median over the runs (robust to the other
    jobs of a shared machine), and the per-run overhead fractions' median."""
    import benchmark.metrics as metrics
    import benchmark.runfolder as runfolder
    import benchmark.runner as runner
    import benchmark.tasks as tasks
    import pruners.connectivity as connectivity
    from benchmark.spec import make_spec
    from pruners.masks import Masks

    per_run: list[dict[str, float]] = []
    recipe = {"epochs": epochs} if epochs else {}
    with tempfile.TemporaryDirectory(prefix="perf-overhead-") as out:
        for seed in range(runs + 1):
            parts: dict[str, float] = defaultdict(float)
            patches = [
                (runner, "load_task_data", "data"), (tasks, "build_model", "model build"),
                (metrics, "forward_backward_seconds", "forward-backward unit"),
                (metrics, "layer_macs", "layer MACs"), (runner, "save_checkpoint", "checkpoints"),
                (runner, "evaluate", "final evaluation"), (connectivity, "connectivity", "connectivity"),
                (Masks, "save", "saving masks"),
                (runfolder, "atomic_write_bytes", (RESULT_WRITE, "writing spec.json and model.pt" + OVERLAPPED)),
                (runfolder.BackgroundWrites, "wait", "waiting for the writer thread"),
            ]
            spec = make_spec("digits-mlp", pruner="magnitude", sparsity=0.9, seed=seed, recipe=recipe)
            with _timed(parts, patches):
                w0 = time.perf_counter()
                rec = runner.execute(spec, out)
                wall = time.perf_counter() - w0
            if rec["status"] != "ok":
                raise RuntimeError(f"overhead run failed: {rec['reason']}")
            total, train = rec["total_time_s"], rec["train_time_s"] - parts["checkpoints"]
            masks = rec["mask_time_s"]
            known = sum(v for k, v in parts.items() if not k.endswith(OVERLAPPED) and not k.startswith(RESULT_WRITE))
            parts = dict(parts)
            parts["other (folder, record, logs, spec)"] = max(0.0, total - train - masks - known)
            overhead = total - train - masks - parts["final evaluation"]
            # the same outside execute()'s own clock too: folder preparation, result.json and its fsync
            wall_overhead = wall - train - masks - parts["final evaluation"]
            per_run.append({"total": total, "train": train, "masks": masks, "overhead": overhead,
                            "fraction": overhead / total, "wall": wall, "wall_fraction": wall_overhead / wall,
                            **{f"part:{k}": v for k, v in parts.items()}})
    steady = per_run[1:] if len(per_run) > 1 else per_run
    keys = sorted({k for r in steady for k in r})
    median = {k: statistics.median(r.get(k, 0.0) for r in steady) for k in keys}
    return {"first": per_run[0], "median": median, "runs": len(steady)}


def section(quick: bool = False) -> str:
    m = measure(runs=1 if quick else 8, epochs=2 if quick else None)
    med = m["median"]
    frac = med["fraction"]
    lines = ["## Framework overhead per run (`digits-mlp`)", "",
             f"`benchmark.runner.execute` in one process, magnitude pruning at 90 %, "
             f"{'2 epochs (quick)' if quick else 'the task recipe (15 epochs)'}; median over {m['runs']} run(s) after "
             "a first one that loads the dataset (cached per worker process in a grid). Wall time.", "",
             "| part | seconds per run | share of the run |", "|---|---|---|",
             f"| whole run (`total_time_s`) | {med['total']:.3f} | 100 % |",
             f"| training loop incl. per-epoch evaluation, excl. checkpoints | {med['train']:.3f} | "
             f"{100 * med['train'] / med['total']:.1f} % |",
             f"| initial masks (the pruner's own cost) | {med['masks']:.3f} | {100 * med['masks'] / med['total']:.1f} % |",
             f"| final evaluation | {med['part:final evaluation']:.3f} | "
             f"{100 * med['part:final evaluation'] / med['total']:.1f} % |"]
    for k in sorted(k for k in med if k.startswith("part:") and k != "part:final evaluation"):
        share = f"{100 * med[k] / med['total']:.2f} %"
        if k.endswith(OVERLAPPED) or k.startswith("part:" + RESULT_WRITE):
            share = f"({share}, not counted)"
        lines.append(f"| — {k[5:]} | {med[k]:.4f} | {share} |")
    ck = med.get("part:checkpoints", 0.0)
    no_ck = (med["overhead"] - ck) / (med["total"] - ck)
    lines += ["", f"Framework overhead (everything but training, evaluation and the pruner): "
                  f"**{100 * frac:.1f} %** of the run (target ≤ {100 * TARGET:.0f} %: "
                  f"{'meets' if frac <= TARGET else 'misses'}). First run of the process (dataset load "
                  f"included): {100 * m['first']['fraction']:.1f} %. Counting also what lies outside "
                  f"`total_time_s` (preparing the folder; result.json, written and fsync'd after the clock stops), "
                  f"of the wall time of `execute()` ({med['wall']:.3f} s): {100 * med['wall_fraction']:.1f} %.",
              "",
              (f"Without the per-epoch checkpoints the overhead would be {100 * no_ck:.1f} %. " if ck > 0.001 * med["total"]
               else "No checkpoint was written: since the checkpoint owner's change, epoch checkpoints are written at "
                    "most every `SPARSEBENCH_CHECKPOINT_EVERY` seconds (default 10), and a `digits-mlp` run is shorter. ")
              + "Every epoch (`SPARSEBENCH_CHECKPOINT_EVERY=0`), a checkpoint (model, optimiser, callbacks, RNG; "
              "written atomically with an fsync) costs ~10–20 ms on this disk against a ~50 ms `digits-mlp` epoch. "
              "Every file of the run folder is still written atomically and fsync'd before result.json "
              "(metrics.jsonl too), but on writer threads: spec.json's fsync overlaps the training; the masks' and "
              "the model's serialisation and fsync, and the metrics' fsync, overlap the final evaluation and "
              "connectivity (a float32 propagation without a model copy, checked equal to the float64 one); what "
              "is left is result.json's own fsync and any wait for the writer. The masks are saved without a "
              "masks.pt.json report (result.json holds the same densities: one fsync fewer), and the density "
              "figures of a Masks are counted once. The per-run measurements (forward-backward unit: 4 passes; "
              "MAC counting: 1 forward; connectivity) are recorded columns, so none was dropped.",
              ""]
    return "\n".join(lines)
