"""The static leaderboard site: ``build_site(df, out_dir)`` and ``serve(site_dir, port)``.

Reads only the results DataFrame (``benchmark.results()``); per-run training curves (``metrics.jsonl``,
for sign flips over training) and pruner metadata (description / paper / url from the registry) come
in as optional arguments, so this module never opens the store or run folders.

Layout of the site (all links relative, no CDN, no external resource: browsable from ``file://``)::

    index.html              one sortable, filterable table per task and target sparsity
    pairs.html              pruner × reparam heat maps (top-1 gap to the pruner's plain run)
    methods/<slug>-<hash>.html   one page per method: plots, numbers, published values, run ids, specs
    img/...png              figures (matplotlib, byte-deterministic)
    assets/leaderboard.{css,js}  shipped with this package
    leaderboard.{csv,md,tex}[,parquet]  the standardised table (parquet when pyarrow is installed)

Deterministic and incremental: the same inputs give byte-identical files except the one
``Generated: …`` line of index.html (``$SOURCE_DATE_EPOCH`` fixes it too).  A file is written only
when its bytes changed (index.html: when anything but that line changed); a figure is re-drawn only
when its inputs changed (an input hash per image in ``.leaderboard-manifest.json``); files of an
earlier build that are no longer produced are removed (only those listed in the manifest).

Markup: Jinja2 templates in ``leaderboard/templates/`` (``base.html``, ``index.html``, ``method.html``,
``pairs.html``, ``macros.html``) with ``autoescape=True``: every value — from specs, plugins or the
published table — is escaped in element text and attribute values alike, and no template marks
anything safe; this module only shapes data.  Pages embed no JSON and no inline script (data sits in
``data-*`` attributes read with ``getAttribute``); external links are emitted only for ``http(s)`` URLs.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import http.server
import json
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from benchmark.runfolder import atomic_write_bytes
from leaderboard import plots
from leaderboard.table import add_method, aggregate, export_table, format_table, has_parquet, paired_gains

MANIFEST = ".leaderboard-manifest.json"
GENERATED_PREFIX = '<p class="generated">Generated: '
FAMILY_LABELS = {"dense": "dense", "pai": "PaI", "dense-to-sparse": "dense-to-sparse", "dst": "DST",
                 "continuous": "continuous", "reparam": "reparam"}
PUBLISHED_COLUMNS = ["task", "method", "sparsity", "top1", "source"]
GRAPHON_LAYER_STATS = ("density", "heterogeneity", "distance_to_constant", "dead_share")
MATRIX_KEYS = ("matrix", "graphon", "histogram", "W")

# the schema columns the site reads (a DataFrame missing one is refused with a ConfigError)
REQUIRED = ["run_id", "status", "task", "pruner", "pruner_family", "pruner_args", "allocation", "allocation_args",
            "reparam", "reparam_args", "optimizer", "seed", "target_sparsity", "achieved_sparsity", "final_top1",
            "final_test_loss", "train_time_s", "train_flops_rel", "inference_flops_rel", "collapse"]


def _config_error(msg: str) -> Exception:
    from pruners.registry import ConfigError

    return ConfigError(msg)


def slugify(text: str, max_len: int = 40) -> str:
    """A safe file-name stem: lowercase ASCII letters, digits and dashes (never empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:max_len].strip("-")
    return slug or "x"


def page_name(method: str) -> str:
    """File name of a method page: slug plus a short hash of the exact method label (unique, safe)."""
    return f"{slugify(method)}-{hashlib.sha256(method.encode('utf-8')).hexdigest()[:8]}.html"


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _fmt(v: Any, spec: str = ".2f") -> str:
    f = _num(v)
    return "—" if not math.isfinite(f) else format(f, spec)


def _sort_attr(v: Any) -> str:
    f = _num(v)
    return "" if not math.isfinite(f) else repr(round(f, 10))


def _pct(v: Any) -> str:
    f = _num(v)
    return "—" if not math.isfinite(f) else f"{100 * f:g}"


def _safe_url(url: Any) -> str | None:
    u = str(url or "").strip()
    return u if re.match(r"^https?://", u, re.IGNORECASE) else None


def _json(v: Any) -> str:
    return json.dumps(v, sort_keys=True, indent=1, default=str, ensure_ascii=False)


# ----------------------------------------------------------------------------------------------- inputs

def normalize_published(published: Any) -> pd.DataFrame:
    """Published numbers as a DataFrame with columns task, method, sparsity (fraction), top1 (%), source.

    Accepts None, a DataFrame or a list of dicts.  A published row is shown beside ours where its task
    equals the raw task name (or the task label), its sparsity equals the target sparsity (within 1e-6),
    and its method equals (case-insensitively) our method label, or, for runs without reparam, the
    ``pruner/allocation`` label or the bare pruner name.
    """
    if published is None:
        return pd.DataFrame(columns=PUBLISHED_COLUMNS)
    pub = published.copy() if isinstance(published, pd.DataFrame) else pd.DataFrame(list(published))
    missing = [c for c in PUBLISHED_COLUMNS if c not in pub.columns]
    if missing:
        raise _config_error(f"published numbers lack column(s) {', '.join(missing)}; give each row "
                            f"{', '.join(PUBLISHED_COLUMNS)} (sparsity as a fraction, top1 in %)")
    pub = pub[PUBLISHED_COLUMNS].copy()
    pub["sparsity"] = pd.to_numeric(pub["sparsity"], errors="coerce")
    pub["top1"] = pd.to_numeric(pub["top1"], errors="coerce")
    bad = pub["sparsity"].isna() | (pub["sparsity"] < 0) | (pub["sparsity"] > 1) | pub["top1"].isna()
    if bad.any():
        row = pub[bad].iloc[0].to_dict()
        raise _config_error(f"published row {row!r} has a sparsity outside [0, 1] or no top1; give sparsity "
                            "as a fraction (0.9, not 90) and top1 as a number")
    return pub.reset_index(drop=True)


def read_published(path: str | Path) -> pd.DataFrame:
    """Published numbers from a .csv or .json file (a list of objects) with the columns of
    :func:`normalize_published`."""
    p = Path(path)
    if not p.is_file():
        raise _config_error(f"published numbers file {str(p)!r} not found; give a .csv or .json file with "
                            f"columns {', '.join(PUBLISHED_COLUMNS)}")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise ValueError("not a list")
            return normalize_published(data)
        if p.suffix.lower() == ".csv":
            return normalize_published(pd.read_csv(p))
    except (ValueError, pd.errors.ParserError) as err:
        raise _config_error(f"cannot read published numbers from {p.name} ({err}); give a CSV with a header "
                            "row or a JSON list of objects") from None
    raise _config_error(f"published numbers file {p.name!r} is neither .csv nor .json; convert it to one of those")


def _published_match(pub: pd.DataFrame, task_names: set[str], names: set[str], sparsity: float) -> list[dict]:
    if pub.empty:
        return []
    hits = pub[pub["task"].astype(str).isin(task_names)
               & ((pub["sparsity"] - float(sparsity)).abs() < 1e-6)
               & pub["method"].astype(str).str.lower().isin({n.lower() for n in names})]
    return hits.sort_values(["source", "top1"], kind="mergesort").to_dict("records")


def _match_names(row: Mapping[str, Any]) -> set[str]:
    names = {str(row["method"])}
    if row.get("family") != "reparam":
        names |= {str(row["base_method"]), str(row["pruner"])}
        if row.get("allocation"):
            names.add(f"{row['pruner']}/{row['allocation']}")
    return names


# ------------------------------------------------------------------------------------------------ writer

@dataclass
class _Output:
    """Everything one build produces: page bytes, and images as (input key, renderer)."""

    files: dict[str, bytes] = field(default_factory=dict)
    images: dict[str, tuple[str, Callable[[], bytes]]] = field(default_factory=dict)

    def image(self, rel: str, inputs: Any, render: Callable[[], bytes]) -> str:
        import matplotlib

        blob = json.dumps([plots.PLOT_VERSION, matplotlib.__version__, inputs], sort_keys=True, default=str)
        self.images[rel] = (hashlib.sha256(blob.encode()).hexdigest(), render)
        return rel


def _strip_generated(data: bytes) -> bytes:
    return b"\n".join(line for line in data.split(b"\n") if not line.startswith(GENERATED_PREFIX.encode()))


@dataclass
class BuildReport:
    """What a build did (paths relative to the site folder)."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]
    rendered: list[str]


def _write(out: Path, produced: _Output) -> BuildReport:
    man_path = out / MANIFEST
    try:
        old = json.loads(man_path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        old = {}
    written, unchanged, rendered = [], [], []
    manifest: dict[str, str] = {}

    def put(rel: str, data: bytes, compare: Callable[[bytes], bytes] = lambda b: b) -> None:
        path = out / rel
        try:
            same = compare(path.read_bytes()) == compare(data)
        except OSError:
            same = False
        if same:
            unchanged.append(rel)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        written.append(rel)

    for rel, data in sorted(produced.files.items()):
        put(rel, data, _strip_generated if rel == "index.html" else (lambda b: b))
        manifest[rel] = hashlib.sha256(data).hexdigest() if rel != "index.html" else ""
    for rel, (key, render) in sorted(produced.images.items()):
        manifest[rel] = key
        if old.get(rel) == key and (out / rel).is_file():
            unchanged.append(rel)
            continue
        rendered.append(rel)
        put(rel, render())
    removed = []
    for rel in sorted(set(old) - set(manifest)):
        p = (out / rel)
        if p.resolve().is_relative_to(out.resolve()) and p.is_file():
            p.unlink()
            removed.append(rel)
    put(MANIFEST, (json.dumps({"files": manifest}, sort_keys=True, indent=1) + "\n").encode())
    return BuildReport(written=written, unchanged=unchanged, removed=removed, rendered=rendered)


def _generated_stamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        t = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
    else:
        t = _dt.datetime.now(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------- pages
# The markup lives in leaderboard/templates/*.html (Jinja2, autoescape on: every value is escaped unless a
# template says otherwise, and none does); the functions below only shape the data the templates show.

def _render(template: str, **context: Any) -> bytes:
    context.setdefault("generated", None)
    context.setdefault("up", "")
    from leaderboard.templating import html_env

    return html_env().get_template(template).render(**context).encode("utf-8")


def _figure(rel: str, alt: str) -> dict[str, str]:
    return {"src": rel, "alt": alt}


def _rank(r: Mapping[str, Any]) -> str:
    """The rank, or ``chance`` for an unranked cell at chance level (leaderboard.table.CHANCE_MARGIN)."""
    if pd.isna(r["rank"]):
        return "chance" if bool(r.get("at_chance")) else "—"
    return str(int(r["rank"]))


def _top1_cell(row: Mapping[str, Any]) -> str:
    if not math.isfinite(_num(row["top1_mean"])):
        return "—"
    out = f"{_fmt(row['top1_mean'])} ± {_fmt(row['top1_std'])}"
    return out + (f" {_ci(row)}" if math.isfinite(_num(row.get("top1_ci_lo"))) else "")


def _ci(row: Mapping[str, Any]) -> str:
    """The 95 % t-interval of the mean over seeds, ``[lo, hi]`` (``—`` with one seed)."""
    lo, hi = _num(row.get("top1_ci_lo")), _num(row.get("top1_ci_hi"))
    return f"[{_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(lo) else "—"


def _hits(hits: Sequence[dict]) -> list[dict[str, str]]:
    return [{"top1": _fmt(h["top1"]), "source": str(h["source"])} for h in hits]


INDEX_NUMBERS = [("top1", "Top-1 (%)"), ("std", "± std"), ("ci", "95 % CI"), ("seeds", "Seeds"), ("gap", "Δ dense"),
                 ("achieved", "Achieved (%)"), ("flops", "Train FLOPs (× dense)"), ("time", "Train time (wall, × dense)"),
                 ("collapsed", "Collapsed"), ("divfail", "Diverged / failed")]


def _index_numbers(r: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(text, data-sort) of the numeric cells of an index row, in INDEX_NUMBERS order."""
    return [
        (_fmt(r["top1_mean"]), _sort_attr(r["top1_mean"])),
        (_fmt(r["top1_std"]), _sort_attr(r["top1_std"])),
        (_ci(r), _sort_attr(r["top1_ci_lo"])),
        (str(int(r["seeds"])), None),
        (_fmt(r["gap_to_dense"], "+.2f"), _sort_attr(r["gap_to_dense"])),
        (_fmt(100 * _num(r["achieved_sparsity"])), _sort_attr(r["achieved_sparsity"])),
        (_fmt(r["train_flops_rel"], ".3f"), _sort_attr(r["train_flops_rel"])),
        (_fmt(r["train_time_rel"]), _sort_attr(r["train_time_rel"])),
        (str(int(r["collapsed"])), None),
        (f"{int(r['diverged'])} / {int(r['failed'])}", str(int(r["diverged"]) + int(r["failed"]))),
    ]


def _overlaps(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when the 95 % intervals of two rows overlap (False when either has none: one seed)."""
    lo_a, hi_a, lo_b, hi_b = (_num(a["top1_ci_lo"]), _num(a["top1_ci_hi"]), _num(b["top1_ci_lo"]), _num(b["top1_ci_hi"]))
    return all(math.isfinite(v) for v in (lo_a, hi_a, lo_b, hi_b)) and lo_b <= hi_a and hi_b >= lo_a


def _best_rows(sub_t: pd.DataFrame, href: Callable[[Mapping[str, Any]], str], multi_opt: bool) -> list[dict]:
    """Per target sparsity: the method with the highest mean, its interval, and every method whose
    interval overlaps it (not distinguishable from the best with these seeds)."""
    out = []
    for sp in sorted(set(sub_t["target_sparsity"])):
        s = sub_t[(sub_t["target_sparsity"] == sp) & np.isfinite(sub_t["top1_mean"].astype(float))]
        if s.empty:
            continue
        if "at_chance" in s and s["at_chance"].all():
            out.append({"pct": _pct(sp), "method": None, "n": len(s)})
            continue
        if "at_chance" in s:
            s = s[~s["at_chance"].astype(bool)]
        recs = s.sort_values(["top1_mean", "method"], ascending=[False, True]).to_dict("records")
        best = recs[0]

        def name(r: Mapping[str, Any]) -> str:
            return f"{r['method']} ({r['optimizer']})" if multi_opt else str(r["method"])

        out.append({"pct": _pct(sp), "method": name(best), "href": href(best), "top1": _top1_cell(best),
                    "ties": [{"method": name(r), "href": href(r)} for r in recs[1:] if _overlaps(best, r)],
                    "n": len(recs), "has_ci": math.isfinite(_num(best["top1_ci_lo"]))})
    return out


def _task_figure(sub_t: pd.DataFrame, task: str, multi_opt: bool, out: _Output) -> dict[str, str] | None:
    series = []
    for (m, opt), sub in sub_t.groupby(["method", "optimizer"], sort=True):
        sub = sub[np.isfinite(sub["top1_mean"].astype(float)) & (sub["target_sparsity"].astype(float) > 0)]
        if sub.empty or (sub["family"] == "dense").all():   # dense (and dense + reparam): the dashed line
            continue
        sub = sub.sort_values("target_sparsity")
        series.append({"method": f"{m} ({opt})" if multi_opt else str(m),
                       "x": [100 * float(x) for x in sub["target_sparsity"]], "y": [float(y) for y in sub["top1_mean"]],
                       "lo": [_num(v) for v in sub["top1_ci_lo"]], "hi": [_num(v) for v in sub["top1_ci_hi"]]})
    if not series:
        return None
    dense = sub_t["dense_top1"].dropna()
    dense_v = float(dense.iloc[0]) if len(dense) else None
    rel = out.image(f"img/task-{slugify(task)}-{_h(task)}-acc.png", {"s": series, "t": task, "d": dense_v},
                    functools.partial(plots.task_accuracy, series, f"{task}: top-1 against sparsity", dense_v))
    return _figure(rel, f"top-1 against sparsity of every method on {task}, with 95 % intervals")


def _facet(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _index(agg: pd.DataFrame, rows: pd.DataFrame, pub: pd.DataFrame, pages: dict[str, str],
           generated: str, exports: Sequence[str], title: str, out: _Output) -> bytes:
    if agg.empty:
        return _render("index.html", page_title=title, title=title, empty=True, generated=generated)
    multi_opt = agg["optimizer"].nunique() > 1
    show_pub = not pub.empty
    first_of = rows.drop_duplicates("method").set_index("method")
    head = [("rank", "num", "Rank"), ("method", "text", "Method"), ("family", "text", "Family")]
    if multi_opt:
        head.append(("optimizer", "text", "Optimiser"))
    head += [(k, "num", label) for k, label in INDEX_NUMBERS]
    if show_pub:
        head.append(("published", "num", "Published top-1"))
    head.append(("runs", "num", "Runs"))
    facets = {k: first_of[k].map(_facet) if k in first_of.columns else pd.Series("", index=first_of.index)
              for k in ("pruner", "reparam", "schedule")}
    tasks = []
    for task in dict.fromkeys(agg["task"]):
        sub_t = agg[agg["task"] == task]
        task_names = {task, str(rows.loc[rows["task"] == task, "task_name"].iloc[0])}

        def href(r: Mapping[str, Any], _task: str = task) -> str:
            return f"methods/{pages[r['method']]}#{_anchor(_task, r['target_sparsity'], r['optimizer'])}"

        sections = []
        for sp in sorted(set(sub_t["target_sparsity"])):
            out_rows = []
            for r in sub_t[sub_t["target_sparsity"] == sp].to_dict("records"):
                method = str(r["method"])
                names = _match_names({**r, "base_method": first_of.at[method, "base_method"]})
                hits = _published_match(pub, task_names, names, r["target_sparsity"]) if show_pub else []
                out_rows.append({
                    "family": r["family"], "method": method, "optimizer": r["optimizer"],
                    "facets": {k: v.at[method] for k, v in facets.items()}, "href": href(r),
                    "rank": _rank(r), "rank_sort": _sort_attr(r["rank"]), "numbers": _index_numbers(r),
                    "hits": _hits(hits), "pub_sort": _sort_attr(hits[0]["top1"]) if hits else "",
                    "run_ids": list(r["run_ids"])})
            sections.append({"id": f"t-{slugify(task)}-{_h(task)}-s{_pct(sp).replace('.', '_')}", "pct": _pct(sp),
                             "rows": out_rows})
        tasks.append({"name": task, "id": f"task-{slugify(task)}-{_h(task)}", "sections": sections,
                      "figure": _task_figure(sub_t, task, multi_opt, out), "best": _best_rows(sub_t, href, multi_opt)})
    families = [f for f in FAMILY_LABELS if f in set(agg["family"])] + sorted(set(agg["family"]) - set(FAMILY_LABELS))
    methods = [{"name": m, "page": pages[m], "family": first_of.at[m, "family"]} for m in sorted(pages)]
    choices = {k: sorted({x for x in v if x}) for k, v in facets.items()}
    return _render("index.html", page_title=title, title=title, empty=False, n_rows=len(agg), n_runs=len(rows),
                   exports=list(exports), families=families, tasks=tasks, head=head, multi_opt=multi_opt,
                   show_pub=show_pub, methods=methods, generated=generated, facets=choices)


def _h(text: Any) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:6]


def _anchor(task: str, sparsity: Any, optimizer: Any) -> str:
    return f"r-{slugify(task)}-{_h(task)}-{_pct(sparsity).replace('.', '_')}-{slugify(optimizer)}"


def _arg_items(args: Any) -> list[tuple[str, str]]:
    if not isinstance(args, Mapping):
        return []
    return [(str(k), _short(v)) for k, v in sorted(args.items(), key=lambda kv: str(kv[0]))]


def _short(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str, ensure_ascii=False)


def _curve_means(run_ids: Iterable[str], curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list, list] | None:
    per_epoch: dict[float, list[float]] = {}
    for rid in run_ids:
        for i, rec in enumerate(curves.get(rid) or []):
            if not isinstance(rec, Mapping):
                continue
            v = _num(rec.get("sign_flips"))
            if math.isfinite(v):
                per_epoch.setdefault(_num(rec.get("epoch", i + 1)), []).append(v)
    if not per_epoch:
        return None
    xs = sorted(x for x in per_epoch if math.isfinite(x))
    return xs, [float(np.mean(per_epoch[x])) for x in xs]


def _graphon_section(mrows: pd.DataFrame, method: str, task: str, out: _Output, stem: str) -> dict | None:
    """Figures and the scalar table of the graphon summaries of ``mrows`` (None: there are none)."""
    ok = mrows[(mrows["status"] == "ok") & mrows["graphon"].map(lambda g: isinstance(g, Mapping) and bool(g))] \
        if "graphon" in mrows.columns else mrows.iloc[0:0]
    if ok.empty:
        return None
    sec: dict[str, Any] = {"layers": None, "matrices": [], "ntk": None, "scalars": []}
    sparsities = sorted(set(ok["target_sparsity"]))
    sec["sparsities"] = [_pct(s) for s in sparsities]
    cols = [f"{_pct(s)}%" for s in sparsities]
    layers: list[str] = []
    for g in ok["graphon"]:
        for name in (g.get("layers") or {}):
            if name not in layers:
                layers.append(str(name))
    if layers:
        stats = {}
        for stat in GRAPHON_LAYER_STATS:
            grid = np.full((len(layers), len(sparsities)), np.nan)
            for j, s in enumerate(sparsities):
                for i, lname in enumerate(layers):
                    vals = [_num(((g.get("layers") or {}).get(lname) or {}).get(stat))
                            for g in ok.loc[ok["target_sparsity"] == s, "graphon"]]
                    vals = [v for v in vals if math.isfinite(v)]
                    if vals:
                        grid[i, j] = float(np.mean(vals))
            if np.isfinite(grid).any():
                stats[stat] = grid
        if stats:
            rel = out.image(f"img/{stem}-graphon-layers.png",
                            {"layers": layers, "cols": cols, "stats": {k: v.tolist() for k, v in stats.items()},
                             "title": f"{method} — {task}"},
                            functools.partial(plots.layer_heatmaps, layers, cols, stats, f"{method} — {task}"))
            sec["layers"] = _figure(rel, "graphon layer statistics of " + method)
    # step graphons, where the summary holds the matrices themselves
    for s in sparsities:
        g = ok.loc[ok["target_sparsity"] == s, "graphon"].iloc[0]
        for lname, info in sorted((g.get("layers") or {}).items(), key=lambda kv: str(kv[0])):
            mat = next((info[k] for k in MATRIX_KEYS if isinstance(info, Mapping) and isinstance(info.get(k), list)), None)
            try:
                arr = np.asarray(mat, dtype=float) if mat is not None else None
            except (TypeError, ValueError):
                arr = None
            if arr is not None and arr.ndim == 2 and arr.size:
                t = f"{lname} at {_pct(s)}%"
                rel = out.image(f"img/{stem}-graphon-{slugify(lname)}-{_h(lname)}-{_pct(s).replace('.', '_')}.png",
                                {"m": arr.tolist(), "t": t}, functools.partial(plots.graphon_matrix, arr, t))
                sec["matrices"].append(_figure(rel, "step graphon " + t))
    spectra = []
    for s in sparsities:
        eigs = [g.get("ntk_eigenvalues") for g in ok.loc[ok["target_sparsity"] == s, "graphon"]]
        eigs = [x for x in eigs if isinstance(x, list) and x]
        if eigs:
            spectra.append({"label": f"{_pct(s)}% (seed of run 1 of {len(eigs)})", "eig": [_num(v) for v in eigs[0]]})
    if spectra:
        rel = out.image(f"img/{stem}-ntk.png", {"s": spectra, "t": f"{method} — {task}"},
                        functools.partial(plots.ntk_spectrum, spectra, f"Graphon NTK spectrum — {task}"))
        sec["ntk"] = _figure(rel, "NTK spectrum of " + method)
    for k in sorted({k for g in ok["graphon"] for k, v in g.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}):
        vals = []
        for s in sparsities:
            xs = [_num(g.get(k)) for g in ok.loc[ok["target_sparsity"] == s, "graphon"]]
            xs = [x for x in xs if math.isfinite(x)]
            vals.append(_fmt(np.mean(xs), ".4g") if xs else "—")
        sec["scalars"].append((k, vals))
    return sec


NUMBERS_HEAD = ["sparsity (%)", "rank", "top-1 (%) ± std [95 % CI]", "seeds", "Δ dense", "achieved (%)",
                "train FLOPs (× dense)", "collapsed", "diverged / failed", "published", "run ids"]


def _method_page(method: str, rows: pd.DataFrame, agg: pd.DataFrame, pub: pd.DataFrame,
                 curves: Mapping[str, Sequence[Mapping[str, Any]]], info: Mapping[str, Any], out: _Output,
                 title: str) -> bytes:
    mrows = rows[rows["method"] == method]
    first = mrows.iloc[0]
    stem = page_name(method)[:-5]
    arg_tables = [("Pruner hyperparameters", _arg_items(first["pruner_args"])),
                  ("Allocation options", _arg_items(first["allocation_args"]))]
    if first["family"] == "reparam":
        arg_tables.append(("Reparam hyperparameters", _arg_items(first["reparam_args"])))
    magg = agg[agg["method"] == method]
    names = _match_names({**first.to_dict(), "method": method})
    tasks = []
    for task in dict.fromkeys(magg["task"]):
        tag = agg[agg["task"] == task]
        task_names = {task, str(rows.loc[rows["task"] == task, "task_name"].iloc[0])}
        optimizers = []
        for opt in sorted(set(magg.loc[magg["task"] == task, "optimizer"])):
            tag_o = tag[tag["optimizer"] == opt]
            series = []
            for m, sub in tag_o.groupby("method", sort=True):
                sub = sub[np.isfinite(sub["top1_mean"].astype(float))].sort_values("target_sparsity")
                if m == "dense" or sub.empty or (sub["family"] == "dense").all():
                    continue
                series.append({"method": str(m), "x": [100 * float(x) for x in sub["target_sparsity"]],
                               "y": [float(y) for y in sub["top1_mean"]], "err": [float(y) for y in sub["top1_std"]]})
            mine = magg[(magg["task"] == task) & (magg["optimizer"] == opt)].sort_values("target_sparsity")
            pub_pts = [{"x": 100 * float(sp), "y": float(h["top1"]), "source": str(h["source"])}
                       for sp in mine["target_sparsity"] for h in _published_match(pub, task_names, names, sp)]
            dense = tag_o["dense_top1"].dropna()
            dense_v = float(dense.iloc[0]) if len(dense) else None
            figure = None
            if first["family"] != "dense" and any(s["method"] == method for s in series):
                ptitle = f"{task} ({opt})"
                rel = out.image(f"img/{stem}-{slugify(task)}-{_h(task)}-{slugify(opt)}-acc.png",
                                {"series": series, "h": method, "t": ptitle, "d": dense_v, "p": pub_pts},
                                functools.partial(plots.accuracy_vs_sparsity, series, method, ptitle, dense_v, pub_pts))
                figure = _figure(rel, "top-1 vs sparsity, " + method + ", " + task)
            numbers = [{"anchor": _anchor(task, r["target_sparsity"], opt),
                        "cells": [_pct(r["target_sparsity"]), _rank(r), _top1_cell(r), str(int(r["seeds"])),
                                  _fmt(r["gap_to_dense"], "+.2f"), _fmt(100 * _num(r["achieved_sparsity"])),
                                  _fmt(r["train_flops_rel"], ".3f"), str(int(r["collapsed"])),
                                  f"{int(r['diverged'])} / {int(r['failed'])}"],
                        "hits": _hits(_published_match(pub, task_names, names, r["target_sparsity"])),
                        "run_ids": list(r["run_ids"])} for r in mine.to_dict("records")]
            optimizers.append({"optimizer": opt, "figure": figure, "rows": numbers})
        trows = mrows[mrows["task"] == task]
        flips = []
        for sp in sorted(set(trows["target_sparsity"])):
            cm = _curve_means(sorted(trows.loc[trows["target_sparsity"] == sp, "run_id"]), curves)
            if cm:
                flips.append({"label": f"{_pct(sp)}%", "epoch": cm[0], "flips": cm[1]})
        flips_fig = None
        if flips:
            rel = out.image(f"img/{stem}-{slugify(task)}-{_h(task)}-flips.png", {"f": flips, "t": task},
                            functools.partial(plots.sign_flips, flips, f"{method} — {task} (mean over seeds)"))
            flips_fig = _figure(rel, "sign flips, " + method + ", " + task)
        runs = [{"run_id": r["run_id"], "pct": _pct(r["target_sparsity"]), "seed": r["seed"], "status": r["status"],
                 "reason": r.get("reason") or "", "top1": _fmt(r["final_top1"]),
                 "achieved": _fmt(100 * _num(r["achieved_sparsity"])), "spec": _json(r.get("spec"))}
                for r in trows.sort_values(["target_sparsity", "seed", "run_id"]).to_dict("records")]
        tasks.append({"name": task, "id": f"task-{slugify(task)}-{_h(task)}", "optimizers": optimizers,
                      "flips": flips_fig, "graphon": _graphon_section(trows, method, task, out,
                                                                      f"{stem}-{slugify(task)}-{_h(task)}"),
                      "runs": runs})
    raw_url = info.get("url") if info else None
    return _render("method.html", up="../", page_title=f"{method} — {title}", method=method, family=first["family"],
                   pruner=first["pruner"], allocation=first["allocation"] if first["family"] != "dense" else None,
                   reparam=first["reparam"], description=(info or {}).get("description") or "",
                   paper=(info or {}).get("paper") or "", url=_safe_url(raw_url), raw_url=raw_url or "",
                   author=(info or {}).get("author") or "", version=(info or {}).get("version") or "",
                   arg_tables=arg_tables, tasks=tasks, numbers_head=NUMBERS_HEAD)


def _gain_text(g: Mapping[str, Any]) -> str:
    """``+0.33 [+0.26, +0.40]`` (``+0.33`` with one pair), ``*`` when the interval excludes zero."""
    mean, lo = _num(g["gain_mean"]), _num(g["gain_lo"])
    if not math.isfinite(mean):
        return "—"
    text = f"{mean:+.2f}" + (f" [{lo:+.2f}, {_num(g['gain_hi']):+.2f}]" if math.isfinite(lo) else "")
    return text + ("*" if bool(g["distinguishable"]) else "")


def _pairs_page(rows: pd.DataFrame, agg: pd.DataFrame, out: _Output, title: str) -> bytes:
    """Per task, optimiser and sparsity: the paired gain (same seeds) of every reparam over the same
    pruner with plain weights, with its 95 % t-interval, as a heat map and a table."""
    blocks = []
    gains = paired_gains(rows) if not rows.empty else pd.DataFrame()
    for (task, opt, sp), sub in (gains.groupby(["task", "optimizer", "target_sparsity"], sort=True)
                                 if not gains.empty else []):
        prs = sorted(set(sub["base_method"]))
        cols = sorted(set(sub["reparam"].astype(str)))
        gap = np.full((len(prs), len(cols)), np.nan)
        labels = [["—"] * len(cols) for _ in prs]
        sig = [[False] * len(cols) for _ in prs]
        for g in sub.to_dict("records"):
            i, j = prs.index(g["base_method"]), cols.index(str(g["reparam"]))
            gap[i, j], labels[i][j], sig[i][j] = _num(g["gain_mean"]), _gain_text(g), bool(g["distinguishable"])
        label = f"{task} — {opt} — sparsity {_pct(sp)} %"
        rel = out.image(f"img/pairs-{slugify(task)}-{_h(task)}-{slugify(opt)}-{_pct(sp).replace('.', '_')}.png",
                        {"r": prs, "c": cols, "g": gap.tolist(), "l": labels, "t": label},
                        functools.partial(plots.pairs_heatmap, prs, cols, gap, label, labels))
        blocks.append({"label": label, "figure": _figure(rel, "paired gains of pruner × reparam, " + label),
                       "cols": cols, "rows": [(p, list(zip(labels[i], sig[i]))) for i, p in enumerate(prs)]})
    return _render("pairs.html", page_title=f"Pruner × reparam — {title}", blocks=blocks)


# --------------------------------------------------------------------------------------------------- API

def _asset(name: str) -> bytes:
    return resources.files("leaderboard").joinpath("static", name).read_bytes()


def build(df: pd.DataFrame | None, out_dir: str | Path, published: Any = None,
          curves: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
          pruner_info: Mapping[str, Mapping[str, Any]] | None = None,
          title: str = "sparsebench leaderboard") -> BuildReport:
    """:func:`build_site`, returning what was written / left unchanged / removed / re-drawn."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise _config_error(f"site folder {str(out)!r} is a file; give a folder path")
    df = pd.DataFrame() if df is None else df
    if not df.empty:
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise _config_error(f"results DataFrame lacks column(s) {', '.join(missing)}; pass "
                                "benchmark.results(out) (the schema's columns)")
    pub = normalize_published(published)
    curves = curves or {}
    pruner_info = pruner_info or {}
    rows = add_method(df) if not df.empty else pd.DataFrame()
    agg = aggregate(df)
    produced = _Output()
    produced.files["assets/leaderboard.css"] = _asset("leaderboard.css")
    produced.files["assets/leaderboard.js"] = _asset("leaderboard.js")
    exports = ["leaderboard.csv", "leaderboard.md", "leaderboard.tex"]
    produced.files["leaderboard.csv"] = format_table(agg, "csv").encode("utf-8")
    produced.files["leaderboard.md"] = (format_table(agg, "md") + "\n").encode("utf-8")
    produced.files["leaderboard.tex"] = (format_table(agg, "latex") + "\n").encode("utf-8")
    if has_parquet():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            produced.files["leaderboard.parquet"] = export_table(agg, Path(tmp) / "t.parquet").read_bytes()
        exports.append("leaderboard.parquet")
    pages: dict[str, str] = {}
    if not agg.empty:
        pages = {m: page_name(m) for m in sorted(set(agg["method"]))}
        for method, fname in pages.items():
            info = pruner_info.get(str(rows.loc[rows["method"] == method, "pruner"].iloc[0])) or {}
            produced.files[f"methods/{fname}"] = _method_page(method, rows, agg, pub, curves, info, produced, title)
    produced.files["pairs.html"] = _pairs_page(rows, agg, produced, title)
    produced.files["index.html"] = _index(agg, rows, pub, pages, _generated_stamp(), exports, title, produced)
    out.mkdir(parents=True, exist_ok=True)
    return _write(out, produced)


def build_site(df: pd.DataFrame | None, out_dir: str | Path, published: Any = None,
               curves: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
               pruner_info: Mapping[str, Mapping[str, Any]] | None = None,
               title: str = "sparsebench leaderboard") -> Path:
    """Write the static leaderboard site for a results DataFrame; returns the path of its index.html.

    Args:
        df: ``benchmark.results(out)`` (schema columns, JSON columns decoded); empty or None gives a
            site that says there are no results yet.
        out_dir: the site folder (created; files of an earlier build there are updated in place).
        published: published numbers to show beside ours: a DataFrame or list of dicts with task,
            method, sparsity (fraction), top1 (%), source (see :func:`normalize_published`).
        curves: run id → that run's ``metrics.jsonl`` records (dicts with ``epoch``, ``sign_flips``);
            gives the sign-flips-over-training plots.
        pruner_info: pruner name → ``{"description", "paper", "url"}`` (from the pruner registry).
        title: page title.

    Raises:
        ConfigError: a DataFrame without the schema columns, malformed published numbers, or an
        ``out_dir`` that is a file.
    """
    build(df, out_dir, published, curves, pruner_info, title)
    return Path(out_dir) / "index.html"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def make_server(site_dir: str | Path, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for the site folder on ``host:port`` (port 0 = a free port); not started."""
    site = Path(site_dir)
    if not (site / "index.html").is_file():
        raise _config_error(f"no leaderboard site in {str(site)!r}; build it first "
                            f"(sparsebench leaderboard build --site {site})")
    handler = functools.partial(_Handler, directory=str(site))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise _config_error(f"cannot listen on {host}:{port} ({err.strerror}); pick another --port") from None


def serve(site_dir: str | Path, port: int = 8000) -> None:
    """Serve the site on http://127.0.0.1:port/ until interrupted (Ctrl-C)."""
    server = make_server(site_dir, port)
    print(f"serving {site_dir} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
