"""Synthetic results DataFrames with the schema's columns, for the leaderboard tests."""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from benchmark.schema import COLUMN_NAMES

FAMILY = {"dense": "dense", "magnitude": "pai", "random": "pai", "snip": "pai", "rigl": "dst", "gmp": "dense-to-sparse"}


def make_run(**kw: Any) -> dict[str, Any]:
    """One result record: every schema column, sensible defaults, ``kw`` overrides.

    The run id hashes the identifying fields (as the real spec hash does), so distinct runs get
    distinct ids unless ``run_id`` is given.
    """
    pruner = kw.get("pruner", "magnitude")
    rec: dict[str, Any] = {name: None for name in COLUMN_NAMES}
    rec.update(status="ok", reason="", grid="test", task="toy", dataset="toy", model="mlp", pruner=pruner,
               pruner_family=FAMILY.get(pruner, "pai"), pruner_args={}, allocation="global",
               allocation_args={}, reparam="none", reparam_args={}, optimizer="sgd", lr=0.1, weight_decay=0.0,
               epochs=3, batch_size=32, seed=0, target_sparsity=0.9, achieved_sparsity=None,
               learned_sparsity=0, layer_density={"l0.weight": 0.1}, collapsed_layers=[], collapse=0,
               final_top1=50.0, best_top1=None, final_test_loss=1.0, final_train_loss=1.0,
               train_time_s=10.0, mask_time_s=0.0, total_time_s=11.0, flops_dense=100.0,
               graphon=None, extra={}, device="cpu", versions={"python": "3.11"},
               started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:10+00:00")
    rec.update(kw)
    if rec["pruner_family"] == "dense" and "target_sparsity" not in kw:
        rec["target_sparsity"] = 0.0
    if rec["achieved_sparsity"] is None:
        rec["achieved_sparsity"] = rec["target_sparsity"]
    if rec["best_top1"] is None:
        rec["best_top1"] = rec["final_top1"]
    for col, val in (("flops_sparse", 100.0 * (1 - rec["target_sparsity"])),
                     ("inference_flops_rel", 1 - rec["target_sparsity"]),
                     ("train_flops_rel", 1 - rec["target_sparsity"])):
        if col not in kw:
            rec[col] = val
    if rec["spec"] is None:
        rec["spec"] = {"task": rec["task"], "pruner": rec["pruner"], "pruner_args": rec["pruner_args"],
                       "allocation": rec["allocation"], "allocation_args": rec["allocation_args"],
                       "reparam": rec["reparam"], "reparam_args": rec["reparam_args"], "seed": rec["seed"],
                       "sparsity": rec["target_sparsity"],
                       "recipe": {"optimizer": rec["optimizer"], "lr": rec["lr"], "epochs": rec["epochs"]}}
    if rec["run_id"] is None:
        rec["run_id"] = hashlib.sha256(json.dumps(rec["spec"], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return rec


def make_df(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame like ``benchmark.results()``: schema columns, JSON columns as Python objects."""
    return pd.DataFrame(runs, columns=COLUMN_NAMES)


def rich_runs(tasks: tuple[str, ...] = ("toy", "toy2"), sparsities: tuple[float, ...] = (0.5, 0.9, 0.98)
              ) -> list[dict[str, Any]]:
    """A small but varied store: dense, PaI, DST, a reparam, graphon summaries (task toy), a failure."""
    runs = []
    drops = {0.5: 1.0, 0.9: 5.0, 0.98: 20.0}
    for task, base in (("toy", 90.0), ("toy2", 80.0)):
        if task not in tasks:
            continue
        for seed in (0, 1):
            runs.append(make_run(task=task, pruner="dense", seed=seed, final_top1=base + seed, train_time_s=10.0))
            for sp, drop in ((s, drops[s]) for s in sparsities):
                g = {"graphon_layers": 2, "graphon_heterogeneity_mean": 0.1 * sp + 0.01 * seed,
                     "layers": {"l0.weight": {"density": 1 - sp, "heterogeneity": 0.2 * sp, "dead_share": 0.0,
                                              "distance_to_constant": 0.2 * sp},
                                "l1.weight": {"density": 1 - sp, "heterogeneity": 0.1 * sp, "dead_share": sp / 2,
                                              "distance_to_constant": 0.1 * sp}},
                     "ntk_eigenvalues": [10.0 / (k + 1) ** (1 + sp) for k in range(8)]}
                runs.append(make_run(task=task, pruner="magnitude", seed=seed, target_sparsity=sp,
                                     final_top1=base - drop + seed, graphon=g if task == "toy" else None))
                runs.append(make_run(task=task, pruner="random", allocation="uniform", seed=seed,
                                     target_sparsity=sp, final_top1=base - 2 * drop + 0.5 * seed))
                runs.append(make_run(task=task, pruner="rigl", allocation="erk", seed=seed, target_sparsity=sp,
                                     final_top1=base - 0.5 * drop + seed, train_time_s=12.0))
                runs.append(make_run(task=task, pruner="magnitude", reparam="signin", reparam_args={"period": 2},
                                     seed=seed, target_sparsity=sp, final_top1=base - drop + 0.3 + seed))
    runs.append(make_run(task="toy", pruner="random", allocation="uniform", seed=2, target_sparsity=0.9,
                         status="failed", reason="out of memory", final_top1=None))
    return runs


def curves_for(df: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Synthetic metrics.jsonl curves: sign flips growing over 3 epochs."""
    return {rid: [{"epoch": ep, "sign_flips": int(ep * 10 * (1 + i % 3)), "test_top1": 50.0 + ep}
                  for ep in (1, 2, 3)] for i, rid in enumerate(sorted(df["run_id"]))}


@pytest.fixture
def synth() -> SimpleNamespace:
    """The helpers of this module (test files are not importable as a package)."""
    return SimpleNamespace(make_run=make_run, make_df=make_df, rich_runs=rich_runs, curves_for=curves_for,
                           hostile_runs=hostile_runs, site_df=site_df, build_inputs=build_inputs,
                           EVIL_PRUNER=EVIL_PRUNER, EVIL_ARG=EVIL_ARG, EVIL_DESC=EVIL_DESC, EVIL_TASK=EVIL_TASK,
                           EVIL_ALLOC=EVIL_ALLOC, SITE_EPOCH=SITE_EPOCH)


# ------------------------------------------------------------------ a hostile plugin and one shared site
EVIL_PRUNER = "<script>alert(1)</script>"
EVIL_ARG = '"><img src=x onerror="window.__xss=1">'
EVIL_DESC = '<img src=x onerror="window.__xss=1; alert(2)"><b onmouseover="alert(3)">bold</b><script>alert(4)</script>'
EVIL_TASK = "t&<i>ask</i>\"'"
EVIL_ALLOC = "<u>alloc</u>"


def hostile_runs() -> list[dict[str, Any]]:
    """A task whose pruner, allocation, args, reparam, reason and graphon keys all hold HTML."""
    runs = [make_run(pruner="dense", task=EVIL_TASK, seed=s, final_top1=90.0 + s) for s in (0, 1)]
    for s in (0, 1):
        for sp in (0.5, 0.9):
            failed = s == 1 and sp == 0.9
            runs.append(make_run(pruner=EVIL_PRUNER, pruner_family="pai", pruner_args={"note": EVIL_ARG},
                                 task=EVIL_TASK, allocation=EVIL_ALLOC, seed=s, target_sparsity=sp,
                                 final_top1=None if failed else 80.0 - 10 * sp + s,
                                 status="failed" if failed else "ok",
                                 reason="<iframe src=x></iframe>" if failed else "",
                                 graphon={"layers": {"<svg onload=alert(5)>": {"density": 0.5, "heterogeneity": 0.1}},
                                          "graphon_<em>x</em>": 0.3}))
            runs.append(make_run(pruner="magnitude", reparam="<b>rp</b>", reparam_args={"k": "<script>x</script>"},
                                 task=EVIL_TASK, seed=s, target_sparsity=sp, final_top1=70.0))
            runs.append(make_run(pruner="magnitude", task=EVIL_TASK, seed=s, target_sparsity=sp, final_top1=71.0))
    return runs


PUBLISHED = [{"task": "toy", "method": "magnitude", "sparsity": 0.9, "top1": 88.5, "source": "Paper 2020"},
             {"task": EVIL_TASK, "method": EVIL_PRUNER, "sparsity": 0.5, "top1": 77.0,
              "source": "<img src=y onerror=alert(8)>"}]
PRUNER_INFO = {EVIL_PRUNER: {"description": EVIL_DESC, "paper": "<a href=javascript:alert(6)>paper</a>",
                             "url": "javascript:alert(7)", "author": "\u202eevil <script>alert(9)</script>",
                             "version": '1" onerror="alert(10)'}}
SITE_EPOCH = "1000000000"


def site_df() -> pd.DataFrame:
    return make_df(rich_runs(tasks=("toy",), sparsities=(0.5, 0.9)) + hostile_runs())


def build_inputs(df: pd.DataFrame) -> dict[str, Any]:
    return dict(published=PUBLISHED, curves=curves_for(df), pruner_info=PRUNER_INFO)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> SimpleNamespace:
    """One site built from :func:`site_df` (with published numbers, curves and pruner info), shared by
    the read-only tests; ``SOURCE_DATE_EPOCH`` fixes its time line.  Tests must not modify it."""
    import os

    from leaderboard.site import build_site

    df = site_df()
    path = tmp_path_factory.mktemp("leaderboard") / "site"
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = SITE_EPOCH
    try:
        build_site(df, path, **build_inputs(df))
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old
    return SimpleNamespace(path=path, df=df)
