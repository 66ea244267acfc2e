"""The stored runs that pin every built-in pruner preset (issue 19: "each preset gives exactly the masks
and metrics it gives today").

``python tests/pruners/preset_runs.py`` runs each case below through the runner on the tiny digits task
and writes ``tests/pruners/data/preset_runs.json``: the run id, the SHA-256 of the final masks and of
every ticket mask, and the final metrics.  The file was written by the code *before* the schedule axis
existed (commit message says so); test_presets.py re-runs each case and compares.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

DATA = Path(__file__).with_name("data") / "preset_runs.json"
RECIPE = {"epochs": 4, "max_train_batches": 6}

#: (label, pruner, sparsity, allocation, pruner args)
CASES = [
    ("random-erk", "random", 0.8, "erk", {}),
    ("magnitude", "magnitude", 0.8, "global", {}),
    ("snip", "snip", 0.8, "global", {}),
    ("grasp", "grasp", 0.8, "global", {}),
    ("synflow", "synflow", 0.8, "global", {"iterations": 10}),
    ("oneshot", "oneshot", 0.8, "global", {"finetune_epochs": 1}),
    ("gmp", "gmp", 0.8, "global", {"start": 0.1, "end": 0.7, "frequency": 3}),
    ("imp", "imp", 0.75, "global", {"rate": 0.5, "rewind_epoch": 0.5}),
    ("lrr", "lrr", 0.75, "global", {"rate": 0.5}),
    ("acdc", "acdc", 0.8, "global", {"warmup_epochs": 1, "phase_epochs": 1, "last_dense_epochs": 0,
                                     "final_epochs": 2, "reference_epochs": 4}),
    ("set", "set", 0.8, "erk", {"update_interval": 4}),
    ("rigl", "rigl", 0.8, "erk", {"update_interval": 4}),
    ("str", "str", 0.8, "global", {}),
    ("cs", "cs", 0.8, "global", {}),
]


def _hash(masks: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].to(torch.bool).cpu().numpy().tobytes())
    return h.hexdigest()


def fingerprint(case: tuple, out: Path) -> dict:
    """Run one case in ``out`` and return what must not change."""
    from benchmark.runfolder import read_result, run_dir
    from benchmark.runner import execute
    from benchmark.spec import make_spec

    _label, pruner, sparsity, allocation, args = case
    spec = make_spec("digits-mlp", pruner, sparsity, seed=0, allocation=allocation, pruner_args=args,
                     recipe=RECIPE)
    execute(spec, out)
    folder = run_dir(out, spec.run_id)
    rec = read_result(folder)
    tickets = sorted(p.name for p in folder.glob("ticket_round*.pt"))
    return {"run_id": spec.run_id, "status": rec["status"],
            "masks": _hash(torch.load(folder / "masks.pt", weights_only=True)),
            "tickets": [_hash(torch.load(folder / t, weights_only=True)) for t in tickets],
            "final_top1": rec["final_top1"], "final_test_loss": rec["final_test_loss"],
            "achieved_sparsity": rec["achieved_sparsity"]}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        found = {c[0]: fingerprint(c, Path(tmp)) for c in CASES}
    DATA.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(found)} preset runs to {DATA}", file=sys.stderr)
