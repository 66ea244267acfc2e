"""The results schema: one row per run (docs/results-schema.md is generated from this list).

``COLUMNS`` is the single source of truth: the SQLite store, the DataFrame returned by
``benchmark.results()`` and the docs all follow it.  Bump ``SCHEMA_VERSION`` when a column is added,
removed or changes meaning; a store written with another version is rebuilt from the run folders
(the source of truth) when it is opened.
"""
from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 5

#: Columns added after records were first written, with the value an older record stands for (a run
#: written before schema 5 ran its pruner's own schedule).
BACKFILL: dict[str, Any] = {"schedule": "", "schedule_args": {}}

# (name, SQLite type, unit, description). JSON columns hold JSON text.
COLUMNS: list[tuple[str, str, str, str]] = [
    ("run_id", "TEXT", "", "SHA-256 (16 hex) of the hashed spec JSON (fields at their class defaults left out; see above); primary key"),
    ("status", "TEXT", "", "ok | diverged | failed"),
    ("reason", "TEXT", "", "why a run failed or diverged (empty when ok)"),
    ("grid", "TEXT", "", "name of the grid that last ran it"),
    ("task", "TEXT", "", "task name (dataset + model + recipe)"),
    ("dataset", "TEXT", "", "dataset name"),
    ("model", "TEXT", "", "model name"),
    ("pruner", "TEXT", "", "pruner name"),
    ("pruner_family", "TEXT", "", "dense | pai | dense-to-sparse | dst | continuous"),
    ("pruner_args", "JSON", "", "all pruner hyperparameters, defaults included"),
    ("allocation", "TEXT", "", "layer allocation (global, uniform, erk, ...)"),
    ("allocation_args", "JSON", "", "allocation options"),
    ("schedule", "TEXT", "", "schedule named in the grid for a scoring pruner (gradual, periodic, ...); empty: "
     "the pruner's own (at initialisation, a preset's such as gmp's, or a learned one)"),
    ("schedule_args", "JSON", "", "schedule hyperparameters (empty with the pruner's own schedule)"),
    ("reparam", "TEXT", "", "reparam name (none = plain weights)"),
    ("reparam_args", "JSON", "", "reparam hyperparameters"),
    ("optimizer", "TEXT", "", "base optimiser of the recipe"),
    ("lr", "REAL", "", "base learning rate"),
    ("weight_decay", "REAL", "", "weight decay of the recipe"),
    ("epochs", "INTEGER", "epochs", "training epochs"),
    ("batch_size", "INTEGER", "samples", "training batch size"),
    ("seed", "INTEGER", "", "run seed"),
    ("target_sparsity", "REAL", "fraction", "requested sparsity of the prunable weights"),
    ("achieved_sparsity", "REAL", "fraction", "fraction of prunable weights pruned in the final masks"),
    ("learned_sparsity", "INTEGER", "bool", "1 when the sparsity comes from training (STR, CS, PILoT)"),
    ("layer_density", "JSON", "fraction", "final density per prunable layer"),
    ("collapsed_layers", "JSON", "", "prunable layers left with no weight"),
    ("collapse", "INTEGER", "bool", "1 when any layer collapsed"),
    ("effective_sparsity", "REAL", "fraction", "prunable weights on no input→output path (Vysogorets & Kempe 2023)"),
    ("dead_neurons", "INTEGER", "units", "output units of prunable layers with no input path or no output path"),
    ("disconnected", "INTEGER", "bool", "1 when no input→output path is left at all"),
    ("final_top1", "REAL", "%", "test top-1 accuracy after the last epoch (not the best epoch)"),
    ("anytime_top1", "JSON", "%", "test top-1 after the optimiser steps of the recipe's eval_at_steps, "
     "{\"300\": 71.2, ...} (empty when none was asked for; steps past the end are left out)"),
    ("best_top1", "REAL", "%", "best test top-1 over epochs (for reference only)"),
    ("final_test_loss", "REAL", "", "test loss after the last epoch"),
    ("final_train_loss", "REAL", "", "mean training loss of the last epoch"),
    ("diverged_step", "INTEGER", "steps", "step at which the loss became non-finite or exploded"),
    ("train_time_s", "REAL", "s", "wall time of the training loop, evaluation included"),
    ("mask_time_s", "REAL", "s", "wall time of computing the initial masks"),
    ("mask_time_fb", "REAL", "fwd-bwd passes", "mask time in units of one forward-backward pass on a pruning batch"),
    ("total_time_s", "REAL", "s", "wall time of the whole run, setup and saving included"),
    ("flops_dense", "REAL", "FLOPs/sample", "inference FLOPs of the dense model"),
    ("flops_sparse", "REAL", "FLOPs/sample", "inference FLOPs of the final sparse model"),
    ("inference_flops_rel", "REAL", "fraction", "flops_sparse / flops_dense"),
    ("train_flops_rel", "REAL", "fraction", "training FLOPs relative to dense training (RigL counting)"),
    ("sparse_speedup", "REAL", "×", "dense / CSR inference latency of the final model on one test batch (CPU), "
     "when analysis.sparse_latency is set"),
    ("sign_flips", "INTEGER", "weights", "kept weights whose sign differs from initialisation at the end"),
    ("sign_flips_layer", "JSON", "weights", "sign flips per layer"),
    ("graphon", "JSON", "", "graphon / NTK summary when the analysis was requested"),
    ("extra", "JSON", "", "method-specific results (e.g. IMP rounds), plugin metadata, per-layer connectivity"),
    ("device", "TEXT", "", "device the run trained on"),
    ("versions", "JSON", "", "python / torch / sparsebench versions and torch_threads (intra-op threads of the run)"),
    ("started_at", "TEXT", "UTC ISO 8601", "start time"),
    ("finished_at", "TEXT", "UTC ISO 8601", "end time"),
    ("spec", "JSON", "", "the whole spec as in spec.json (spec format 2: task, dataset, model and their args, recipe, hyperparameters, class versions)"),
]

COLUMN_NAMES = [c[0] for c in COLUMNS]
JSON_COLUMNS = {c[0] for c in COLUMNS if c[1] == "JSON"}


def empty_record() -> dict[str, Any]:
    return {name: None for name in COLUMN_NAMES}


def schema_markdown() -> str:
    """The Markdown table of docs/results-schema.md."""
    lines = [f"Schema version: **{SCHEMA_VERSION}**", "",
             "| column | type | unit | meaning |", "|---|---|---|---|"]
    for name, typ, unit, desc in COLUMNS:
        lines.append(f"| `{name}` | {typ} | {unit} | {desc} |")
    return "\n".join(lines) + "\n"
