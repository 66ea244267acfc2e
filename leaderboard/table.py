"""The standardised results table: mean ± std over seeds per method, task, optimiser and sparsity.

Reads only the results DataFrame (``benchmark.results()``), never the store or run folders.

*Method* = pruner with its schedule, layer allocation, hyperparameters and reparam
(``pruner[@schedule][/allocation][+reparam]``).  Runs that share a label but differ in hyperparameters are kept
apart: the label gets the keys that differ, e.g. ``snip/global[batches=5]`` (:func:`add_method`); a key
that some runs lack (added to the spec in a later version) splits only where its present values differ.  The
same holds for the training recipe: when one task was run with several recipes (e.g. a grid that sets
``epochs = 3``), the task label gets the differing recipe keys, ``fmnist-lenet300[epochs=3]``.

Aggregated columns (:func:`aggregate`), over the runs with status ``ok`` of one
(task, method, optimizer, target sparsity):

* ``top1_mean`` / ``top1_std``: final (last-epoch) test top-1 in %, over seeds; the std is the sample
  standard deviation (``ddof = 1``); with a single seed it is 0 and ``seeds`` says 1.
  ``top1_ci_lo`` / ``top1_ci_hi``: the 95 % Student-t interval of the mean over seeds
  (:func:`benchmark.stats.t_interval`; NaN with one seed).  Runs that repeat a
  seed (same training, different analysis options, hence another run id) are averaged into one value
  per seed first; ``seeds`` counts distinct seeds with an ok run, ``runs`` every run behind the row.
* ``rank``: within (task, target sparsity), by ``top1_mean`` rounded to 2 decimals (the displayed
  precision), higher is better; ties share the lowest rank ("min" / competition ranking: 1, 2, 2, 4).
  Rows without an ok run have no rank.
* ``gap_to_dense``: ``top1_mean`` minus the mean final top-1 of the plain dense runs (pruner family
  ``dense``, reparam ``none``) of the same task and optimiser, in percentage points.
* ``train_flops_rel``: training FLOPs relative to dense training (schema column, RigL counting);
  ``train_time_rel``: mean training wall time divided by the dense runs' mean of the same task and
  optimiser (hardware-dependent; for reference).
* ``sparse_speedup``: measured dense / CSR inference latency (schema column, runs with
  ``analysis.sparse_latency``; NaN otherwise), beside ``inference_flops_rel`` (the theoretical ratio).
* ``collapsed``: ok runs with a collapsed layer; ``diverged`` / ``failed``: runs with that status.
* ``run_ids``: every run behind the row (all statuses), sorted.
"""
from __future__ import annotations

import functools
import re

import json
import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from benchmark.stats import paired_difference, t_interval

GROUP = ["task", "method", "optimizer", "target_sparsity"]
RANK_DECIMALS = 2

COLUMNS = GROUP + [
    "family", "pruner", "allocation", "reparam", "seeds", "runs", "top1_mean", "top1_std", "top1_ci_lo",
    "top1_ci_hi", "rank", "chance_top1", "at_chance", "seeds_at_chance",
    "gap_to_dense", "dense_top1", "achieved_sparsity", "train_flops_rel", "train_time_rel",
    "inference_flops_rel", "sparse_speedup", "loss_mean", "collapsed", "diverged", "failed", "run_ids",
]

#: A classification cell whose mean top-1 is within this many points of chance (100 / classes) is
#: marked ``at_chance`` and not ranked: when every method fails at a sparsity, none of them wins it.
#: ``seeds_at_chance`` counts the seeds of a cell that end within the same margin: a cell where some
#: seeds train and others never leave chance (a trainability failure, not a divergence) says so instead
#: of showing only a mean between the two.
CHANCE_MARGIN = 2.0


def _chance_of(dataset: Any, dataset_args: Any) -> float:
    """Chance-level top-1 (%) of a classification dataset, 100 / classes; NaN for regression or a
    dataset this installation does not know (a plugin's)."""
    return _chance_cached(str(dataset), json.dumps(dict(dataset_args or {}), sort_keys=True, default=str))


@functools.lru_cache(maxsize=64)
def _chance_cached(dataset: str, args_json: str) -> float:
    from benchmark.tasks.datasets import dataset_info
    from pruners.registry import ConfigError

    try:
        info = dataset_info(dataset, **json.loads(args_json))
    except (ConfigError, TypeError):
        return float("nan")
    if getattr(info, "task_type", "classification") != "classification" or not info.num_outputs:
        return float("nan")
    return 100.0 / int(info.num_outputs)


# recipe keys compared to tell apart runs of one task trained differently (spec["recipe"] when present)
_RECIPE_COLUMNS = ["lr", "weight_decay", "epochs", "batch_size"]


def _config_error(msg: str) -> Exception:
    from pruners.registry import ConfigError  # lazy: the table itself needs no torch

    return ConfigError(msg)


def method_label(row: pd.Series | dict) -> str:
    """``pruner[@schedule][/allocation][+reparam]`` — the readable part of a method name (no hyperparameters)."""
    label = base_label(row)
    if row.get("reparam") not in (None, "none"):
        label += f"+{row['reparam']}"
    return label


def base_label(row: pd.Series | dict) -> str:
    """``pruner[@schedule][/allocation]``: dense runs have no allocation; the schedule shows when the
    grid chose one for a scoring pruner (``snip@gradual/global``)."""
    label = str(row["pruner"])
    schedule = row.get("schedule")
    if isinstance(schedule, str) and schedule:   # '' / NaN / None: the pruner's own schedule
        label += f"@{schedule}"
    if row.get("pruner_family") != "dense" and row["pruner"] != "dense" and row.get("allocation"):
        label += f"/{row['allocation']}"
    return label


def family_of(row: pd.Series | dict) -> str:
    """The filter family of the site: ``reparam`` when a reparam is set, else the pruner family."""
    if row.get("reparam") not in (None, "none"):
        return "reparam"
    return str(row.get("pruner_family") or "unknown")


def _canon(v: Any) -> str:
    return json.dumps(v if v is not None else {}, sort_keys=True, default=str)


def _short(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str, separators=(",", ":"))


def _differing_suffix(variants: dict[str, dict[str, Any]]) -> dict[str, str]:
    """canonical JSON → ``[k=v, …]`` listing the keys whose values differ among the variants."""
    if len(variants) < 2:
        return {k: "" for k in variants}
    keys = sorted({k for d in variants.values() for k in d})
    # a key splits only where its present values differ: a key missing from some variants (a
    # hyperparameter or recipe key added in a later version, so absent from older specs) does not
    differ = [k for k in keys if len({_canon(d[k]) for d in variants.values() if k in d}) > 1]
    if not differ:
        return {k: "" for k in variants}
    out = {}
    for canon, d in variants.items():
        parts = [f"{k}={_short(d[k]) if k in d else '∅'}" for k in differ]
        out[canon] = "[" + ", ".join(parts) + "]"
    return out


def _recipe(row: pd.Series) -> dict[str, Any]:
    spec = row.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("recipe"), dict):
        rec = dict(spec["recipe"])
        rec.pop("optimizer", None)  # the optimiser is a column of its own
        return rec
    return {c: row.get(c) for c in _RECIPE_COLUMNS if c in row and not _isnan(row.get(c))}


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def add_method(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``method``, ``base_method`` (without reparam), ``family`` and a recipe-qualified ``task``.

    The raw task name stays in ``task_name``.  Pure function of the rows (order-independent).
    """
    df = df.reset_index(drop=True)
    if df.empty:
        for c in ("method", "base_method", "family", "task_name"):
            df[c] = pd.Series(dtype=object)
        return df
    df["task_name"] = df["task"]
    # tasks trained with several recipes → task label names the differing recipe keys
    recipes = df.apply(_recipe, axis=1)
    task_label = df["task"].astype(str).copy()
    for task, idx in df.groupby("task").groups.items():
        variants = {_canon(recipes[i]): recipes[i] for i in idx}
        suffix = _differing_suffix(variants)
        for i in idx:
            task_label[i] = f"{task}{suffix[_canon(recipes[i])]}"
    df["task"] = task_label

    base = df.apply(base_label, axis=1)
    pargs = [{**(p or {}), **{f"alloc.{k}": v for k, v in (a or {}).items()}}
             for p, a in zip(df["pruner_args"], df["allocation_args"])]
    base_method = base.copy()
    for label, idx in base.groupby(base).groups.items():
        variants = {_canon(pargs[df.index.get_loc(i)]): pargs[df.index.get_loc(i)] for i in idx}
        suffix = _differing_suffix(variants)
        for i in idx:
            base_method[i] = label + suffix[_canon(pargs[df.index.get_loc(i)])]
    df["base_method"] = base_method

    method = base_method.copy()
    with_reparam = df["reparam"].notna() & (df["reparam"] != "none")
    keyed = base_method[with_reparam] + "+" + df.loc[with_reparam, "reparam"].astype(str)
    for label, idx in keyed.groupby(keyed).groups.items():
        variants = {_canon(df.at[i, "reparam_args"]): (df.at[i, "reparam_args"] or {}) for i in idx}
        suffix = _differing_suffix(variants)
        for i in idx:
            method[i] = label + suffix[_canon(df.at[i, "reparam_args"])]
    df["method"] = method
    df["family"] = df.apply(family_of, axis=1)
    return df


def _mean(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.mean()) if len(s) else float("nan")


def dense_reference(df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer): mean final top-1 and train time of the plain dense ok runs.

    ``df`` must have gone through :func:`add_method`.
    """
    cols = ["task", "optimizer", "dense_top1", "dense_time"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    dense = df[(df["pruner_family"] == "dense") & (df["family"] == "dense") & (df["status"] == "ok")]
    rows = [dict(task=t, optimizer=o, dense_top1=_mean(sub["final_top1"]), dense_time=_mean(sub["train_time_s"]))
            for (t, o), sub in dense.groupby(["task", "optimizer"], sort=True)]
    return pd.DataFrame(rows, columns=cols)


def per_seed(runs: pd.DataFrame, column: str) -> pd.Series:
    """One value per distinct seed: runs repeating a seed (e.g. the same training with and without the
    graphon analysis, which gives a different run id) are averaged first, so they count once."""
    vals = pd.to_numeric(runs[column], errors="coerce").astype(float)
    vals = vals[vals.notna()]
    if vals.empty:
        return vals
    return vals.groupby(runs.loc[vals.index, "seed"]).mean()


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, optimizer, target sparsity); columns in :data:`COLUMNS`.

    Sorted by task, target sparsity, rank (unranked last), method.
    """
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = add_method(df)
    ref = {(r.task, r.optimizer): r for r in dense_reference(df).itertuples()}
    rows = []
    for key, sub in df.groupby(GROUP, sort=True, dropna=False):
        ok = sub[sub["status"] == "ok"]
        top1 = per_seed(ok, "final_top1")
        est = t_interval(top1)
        mean = est.mean
        r = ref.get((key[0], key[2]))
        dense_top1 = r.dense_top1 if r is not None else float("nan")
        dense_time = r.dense_time if r is not None else float("nan")
        time = _mean(ok["train_time_s"])
        first = sub.iloc[0]
        spec = first.get("spec") if isinstance(first.get("spec"), dict) else {}
        chance = _chance_of(first.get("dataset", spec.get("dataset")), spec.get("dataset_args"))
        rows.append(dict(
            zip(GROUP, key), family=first["family"], pruner=first["pruner"], allocation=first["allocation"],
            reparam=first["reparam"], seeds=len(top1), runs=len(sub), top1_mean=mean,
            top1_std=est.std, top1_ci_lo=est.lo, top1_ci_hi=est.hi,
            rank=None, chance_top1=chance,
            at_chance=bool(math.isfinite(mean) and math.isfinite(chance) and mean <= chance + CHANCE_MARGIN),
            seeds_at_chance=int((top1 <= chance + CHANCE_MARGIN).sum()) if math.isfinite(chance) else 0,
            gap_to_dense=mean - dense_top1, dense_top1=dense_top1,
            achieved_sparsity=_mean(ok["achieved_sparsity"]), train_flops_rel=_mean(ok["train_flops_rel"]),
            train_time_rel=time / dense_time if dense_time and dense_time > 0 else float("nan"),
            inference_flops_rel=_mean(ok["inference_flops_rel"]),
            sparse_speedup=_mean(ok["sparse_speedup"]) if "sparse_speedup" in ok else float("nan"),
            loss_mean=_mean(ok["final_test_loss"]),
            collapsed=int(pd.to_numeric(ok["collapse"], errors="coerce").fillna(0).astype(int).sum()),
            diverged=int((sub["status"] == "diverged").sum()), failed=int((sub["status"] == "failed").sum()),
            run_ids=tuple(sorted(str(x) for x in sub["run_id"]))))
    agg = pd.DataFrame(rows, columns=COLUMNS)
    agg["rank"] = rank_within(agg)
    agg = agg.assign(_r=agg["rank"].fillna(10**9)).sort_values(
        ["task", "target_sparsity", "_r", "method", "optimizer"], kind="mergesort").drop(columns="_r")
    return agg.reset_index(drop=True)


GAIN_KEY = ["task", "base_method", "optimizer", "target_sparsity"]
GAIN_COLUMNS = GAIN_KEY + ["method", "reparam", "pairs", "gain_mean", "gain_std", "gain_lo", "gain_hi",
                           "distinguishable", "base_top1", "variant_top1", "variant_diverged", "base_diverged"]


def paired_gains(df: pd.DataFrame) -> pd.DataFrame:
    """The gain of every reparam over the same method with plain weights, paired over seeds.

    For each (task, base method, optimiser, target sparsity) and each method with a reparam, the
    per-seed difference of final top-1 (variant − plain; the same seed gives both the same mask,
    initialisation and data order) over the seeds both finished, with its 95 % t-interval
    (:func:`benchmark.stats.paired_difference`).  ``distinguishable`` is true when the interval excludes
    zero.  Diverged runs are not paired; their counts are columns of their own, so a variant that
    diverges in some seeds is visible rather than averaged in.
    """
    if df.empty:
        return pd.DataFrame(columns=GAIN_COLUMNS)
    df = add_method(df)
    plain_rows = df["reparam"].isna() | (df["reparam"] == "none")
    plain = {key: sub for key, sub in df[plain_rows].groupby(GAIN_KEY, sort=True, dropna=False)}
    rows = []
    for key, sub in df[~plain_rows].groupby(GAIN_KEY + ["method"], sort=True, dropna=False):
        base = plain.get(tuple(key[:-1]))
        if base is None:
            continue
        b = per_seed(base[base["status"] == "ok"], "final_top1")
        v = per_seed(sub[sub["status"] == "ok"], "final_top1")
        est = paired_difference(b.to_dict(), v.to_dict())
        rows.append(dict(zip(GAIN_KEY + ["method"], key), reparam=sub.iloc[0]["reparam"], pairs=est.n,
                         gain_mean=est.mean, gain_std=est.std, gain_lo=est.lo, gain_hi=est.hi,
                         distinguishable=est.excludes_zero, base_top1=float(b.mean()) if len(b) else math.nan,
                         variant_top1=float(v.mean()) if len(v) else math.nan,
                         variant_diverged=int((sub["status"] == "diverged").sum()),
                         base_diverged=int((base["status"] == "diverged").sum())))
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def anytime(df: pd.DataFrame) -> pd.DataFrame:
    """Anytime accuracy: per (task, method, optimizer, target sparsity), the mean over seeds of test top-1
    after each step count the runs recorded (the recipe's ``eval_at_steps``, schema column
    ``anytime_top1``; columns ``top1@<steps>``) and at the end (``top1@end``), with ``seeds``.  A gain that
    shows at 300 steps and not at the end is an early-training effect."""
    if df.empty:
        return pd.DataFrame(columns=GROUP + ["seeds", "top1@end"])
    df = add_method(df)
    ok = df[df["status"] == "ok"]
    rows = []
    for key, sub in ok.groupby(GROUP, sort=True, dropna=False):
        row: dict[str, Any] = dict(zip(GROUP, key))
        at: dict[int, dict[Any, float]] = {}
        for seed, rec in zip(sub["seed"], sub["anytime_top1"]):
            for k, v in (rec or {}).items():
                at.setdefault(int(k), {})[seed] = float(v)
        for k in sorted(at):
            row[f"top1@{k}"] = sum(at[k].values()) / len(at[k])
        end = per_seed(sub, "final_top1")
        row.update(seeds=len(end), **{"top1@end": float(end.mean()) if len(end) else math.nan})
        rows.append(row)
    out = pd.DataFrame(rows)
    steps = sorted((c for c in out.columns if c.startswith("top1@") and c != "top1@end"), key=lambda c: int(c[5:]))
    return out[GROUP + ["seeds"] + steps + ["top1@end"]]


def gains_frame(gains: pd.DataFrame) -> pd.DataFrame:
    """Human-readable paired gains: ``gain ± std [lo, hi]`` in points, and whether it excludes zero."""
    def cell(r: Any) -> str:
        if r.pairs == 0:
            return "—"
        if r.pairs == 1:
            return f"{r.gain_mean:+.2f} (one pair)"
        return f"{r.gain_mean:+.2f} ± {r.gain_std:.2f} [{r.gain_lo:+.2f}, {r.gain_hi:+.2f}]"
    return pd.DataFrame({
        "task": gains["task"], "method": gains["method"], "vs": gains["base_method"],
        "target (%)": (100 * gains["target_sparsity"].astype(float)).map(lambda v: f"{v:g}"),
        "plain top-1": gains["base_top1"].map(lambda v: _fmt(v, ".2f")),
        "with reparam": gains["variant_top1"].map(lambda v: _fmt(v, ".2f")),
        "paired gain (points, 95 % CI)": [cell(r) for r in gains.itertuples()],
        "pairs": gains["pairs"].astype(int).astype(str),
        "excludes 0": ["yes" if d else "no" for d in gains["distinguishable"]],
        "diverged": [f"{v}/{b}" for v, b in zip(gains["variant_diverged"], gains["base_diverged"])],
    })


def rank_within(agg: pd.DataFrame) -> pd.Series:
    """Rank within (task, target sparsity) by the mean rounded to RANK_DECIMALS; ties share the min rank.
    Cells at chance level (``at_chance``) are not ranked."""
    key = agg["top1_mean"].astype(float).round(RANK_DECIMALS)
    if "at_chance" in agg:
        key = key.where(~agg["at_chance"].fillna(False).astype(bool))
    ranks = key.groupby([agg["task"], agg["target_sparsity"]]).rank(method="min", ascending=False)
    return ranks.astype("Int64")


def _fmt(v: Any, spec: str, dash: str = "—") -> str:
    return dash if _isnan(v) or (hasattr(pd, "isna") and pd.isna(v)) else format(v, spec)


def display_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """Human-readable columns: top-1 as mean ± std, sparsities in percent, costs relative to dense.

    ``rank`` says ``chance`` for an unranked cell at chance level; ``CSR speed-up`` is left out when no
    row has one (it needs ``analysis = { sparse_latency = true }``).  Train time is wall-clock time
    relative to dense training: masked layers run dense kernels, so it stays near 1 (or above, with the
    mask and reparam work) at any FLOP count.
    """
    frame = pd.DataFrame({
        "task": agg["task"],
        "rank": [("chance" if c else "—") if pd.isna(v) else str(int(v))
                 for v, c in zip(agg["rank"], agg["at_chance"].fillna(False))],
        "method": agg["method"],
        "optimizer": agg["optimizer"],
        "target (%)": (100 * agg["target_sparsity"].astype(float)).map(lambda v: f"{v:g}"),
        "achieved (%)": (100 * agg["achieved_sparsity"].astype(float)).map(lambda v: _fmt(v, ".2f")),
        "top-1 (%)": [("—" if pd.isna(m) else f"{m:.2f} ± {s:.2f}") for m, s in zip(agg["top1_mean"], agg["top1_std"])],
        "95 % CI": [("—" if pd.isna(lo) else f"[{lo:.2f}, {hi:.2f}]") for lo, hi in zip(agg["top1_ci_lo"], agg["top1_ci_hi"])],
        "seeds": agg["seeds"].astype(int).astype(str),
        "Δ dense": agg["gap_to_dense"].map(lambda v: _fmt(v, "+.2f")),
        "train FLOPs (× dense)": agg["train_flops_rel"].map(lambda v: _fmt(v, ".3f")),
        "CSR speed-up": agg["sparse_speedup"].map(lambda v: _fmt(v, ".2f")),
        "train time (wall, × dense)": agg["train_time_rel"].map(lambda v: _fmt(v, ".2f")),
        "collapsed": agg["collapsed"].astype(int).astype(str),
        "seeds at chance": agg["seeds_at_chance"].fillna(0).astype(int).astype(str),
        "diverged/failed": [f"{d}/{f}" for d, f in zip(agg["diverged"], agg["failed"])],
    }, columns=["task", "rank", "method", "optimizer", "target (%)", "achieved (%)", "top-1 (%)", "95 % CI",
                "seeds", "Δ dense", "train FLOPs (× dense)", "CSR speed-up", "train time (wall, × dense)",
                "collapsed", "seeds at chance", "diverged/failed"])
    if agg["sparse_speedup"].isna().all():
        frame = frame.drop(columns="CSR speed-up")
    return frame


def machine_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """The aggregated table with ``run_ids`` as one space-separated string (for CSV)."""
    out = agg.copy()
    out["run_ids"] = out["run_ids"].map(lambda ids: " ".join(ids))
    return out


FORMATS = ("plain", "md", "csv", "latex")


def format_table(agg: pd.DataFrame, fmt: str = "plain", gains: bool = False) -> str:
    """Render the aggregated table: ``plain`` / ``md`` (GitHub) / ``latex`` (booktabs) via tabulate, or ``csv``.

    The CSV holds the machine-readable columns (:data:`COLUMNS`, full precision, run ids space-separated);
    the others the display columns of :func:`display_frame`.  With ``gains``, ``agg`` is a
    :func:`paired_gains` frame (CSV: all its columns; the others :func:`gains_frame`).
    """
    if fmt not in FORMATS:
        raise _config_error(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return (agg if gains else machine_frame(agg)).to_csv(index=False, lineterminator="\n")
    from tabulate import tabulate

    disp = gains_frame(agg) if gains else display_frame(agg)
    if fmt == "md":  # names come from plugins: no raw HTML or Markdown syntax reaches a rendered page
        for col in NAME_COLUMNS & set(disp.columns):
            disp[col] = disp[col].map(md_escape)
    tablefmt = {"plain": "simple", "md": "github", "latex": "latex_booktabs"}[fmt]
    text = tabulate(disp.values.tolist(), headers=list(disp.columns), tablefmt=tablefmt, disable_numparse=True)
    if fmt == "latex":  # after tabulate's escaping, so the macros stay macros; pdflatex needs no unicode
        for char, macro in LATEX_SYMBOLS.items():
            text = text.replace(char, macro)
    return text


#: The non-ASCII symbols of the display columns and their LaTeX (math-mode where needed) spellings.
LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "–": "--", "×": r"$\times$", "≥": r"$\geq$",
                 "≤": r"$\leq$", "→": r"$\to$", "·": r"$\cdot$"}


#: Display columns that hold names (a plugin's, a task's), escaped in Markdown output.
NAME_COLUMNS = {"task", "method", "vs", "optimizer"}
_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_escape(value: object) -> object:
    """A Markdown table cell that renders as the text it holds: HTML-escaped (``<script>`` shows as
    text); the characters that make links, code, emphasis or break the table (``\\ ` * [ ] |``) are
    backslash-escaped.  Non-strings pass through."""
    if not isinstance(value, str):
        return value
    import html

    return _MD_SPECIAL.sub(r"\\\1", html.escape(value, quote=False))


def has_parquet() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def export_table(agg: pd.DataFrame, path: str | Path) -> Path:
    """Write the aggregated table; the format follows the suffix: .csv, .md, .tex, .txt, .parquet.

    Parquet needs ``pyarrow`` (``pip install pyarrow``); without it a ConfigError says so.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        if not has_parquet():
            raise _config_error(f"writing {path.name} needs pyarrow; pip install pyarrow, or use .csv")
        out = agg.copy()
        out["run_ids"] = out["run_ids"].map(list)
        out["rank"] = out["rank"].astype("float64")
        out.to_parquet(path, index=False)
        return path
    fmt = {".csv": "csv", ".md": "md", ".tex": "latex", ".txt": "plain"}.get(suffix)
    if fmt is None:
        raise _config_error(f"unknown table file type {path.suffix!r}; use .csv, .md, .tex, .txt or .parquet")
    text = format_table(agg, fmt)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


def standard_table(df: pd.DataFrame, tasks: Iterable[str] | None = None) -> pd.DataFrame:
    """The standardised table as a pandas DataFrame (optionally only some raw task names)."""
    if tasks is not None and not df.empty:
        df = df[df["task"].isin(list(tasks))]
    return aggregate(df)
