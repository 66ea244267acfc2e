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

Escaping: every text that comes from specs, plugins or the published table goes through
``html.escape(..., quote=True)``, in element text and in attribute values alike; pages embed no JSON
and no inline script (data sits in ``data-*`` attributes read with ``getAttribute``); external links
are emitted only for ``http(s)`` URLs.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import html
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
from leaderboard.table import add_method, aggregate, export_table, format_table, has_parquet

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


def e(value: Any) -> str:
    """HTML-escape any value for element text and (double-quoted) attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


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

def _page(title: str, body: str, depth: int = 0, generated: str | None = None) -> bytes:
    up = "../" * depth
    stamp = f"{GENERATED_PREFIX}{e(generated)}</p>\n" if generated is not None else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{e(title)}</title>\n"
        f"<link rel=\"stylesheet\" href=\"{up}assets/leaderboard.css\">\n"
        f"<script src=\"{up}assets/leaderboard.js\" defer></script>\n"
        "</head>\n<body>\n"
        f"<nav><a href=\"{up}index.html\">Leaderboard</a><a href=\"{up}pairs.html\">Pruner × reparam</a>"
        f"<a href=\"{up}index.html#methods\">Methods</a></nav>\n"
        f"{body}\n{stamp}</body>\n</html>\n"
    ).encode("utf-8")


def _fam_badge(fam: str) -> str:
    return f'<span class="fam fam-{e(slugify(fam))}">{e(FAMILY_LABELS.get(fam, fam))}</span>'


def _top1_cell(row: Mapping[str, Any]) -> str:
    if not math.isfinite(_num(row["top1_mean"])):
        return "—"
    out = f"{_fmt(row['top1_mean'])} ± {_fmt(row['top1_std'])}"
    return out + (f" {_ci(row)}" if math.isfinite(_num(row.get("top1_ci_lo"))) else "")


def _ci(row: Mapping[str, Any]) -> str:
    """The 95 % t-interval of the mean over seeds, ``[lo, hi]`` (``—`` with one seed)."""
    lo, hi = _num(row.get("top1_ci_lo")), _num(row.get("top1_ci_hi"))
    return f"[{_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(lo) else "—"


def _published_text(hits: Sequence[dict]) -> str:
    return "<br>".join(f'<span class="published">{e(_fmt(h["top1"]))} ({e(h["source"])})</span>' for h in hits)


def _index(agg: pd.DataFrame, rows: pd.DataFrame, pub: pd.DataFrame, pages: dict[str, str],
           generated: str, exports: Sequence[str], title: str) -> bytes:
    parts = [f"<h1>{e(title)}</h1>"]
    if agg.empty:
        parts.append('<p class="empty">No results yet. Run a grid (for example '
                     "<code>sparsebench run grids/quick.toml --out results</code>) and build the site again.</p>")
        return _page(title, "\n".join(parts), generated=generated)
    n_runs = len(rows)
    parts.append(f"<p class=\"note\">{len(agg)} rows from {n_runs} runs. Top-1 = final-epoch test accuracy, "
                 "mean ± sample std (ddof = 1) over seeds; rank within task and sparsity on the mean rounded "
                 "to 2 decimals, ties share the lowest rank; Δ dense = mean − dense mean of the same task "
                 "and optimiser (percentage points); train FLOPs / time relative to dense training.</p>")
    parts.append("<p>Download: " + ", ".join(f'<a href="{e(x)}">{e(x)}</a>' for x in exports) + "</p>")
    fams = [f for f in FAMILY_LABELS if f in set(agg["family"])] + \
        sorted(set(agg["family"]) - set(FAMILY_LABELS))
    ctl = ['<div class="controls" role="search"><strong>Family:</strong>']
    for f in fams:
        ctl.append(f'<label><input type="checkbox" class="family-filter" value="{e(f)}" checked> '
                   f'{e(FAMILY_LABELS.get(f, f))}</label>')
    ctl.append('<label>Search: <input type="search" id="search" placeholder="method name" '
               'autocomplete="off"></label></div>')
    parts.append("".join(ctl))
    tasks = list(dict.fromkeys(agg["task"]))
    parts.append("<p>Tasks: " + " ".join(f'<a href="#task-{e(slugify(t))}-{_h(t)}">{e(t)}</a>' for t in tasks) + "</p>")
    multi_opt = agg["optimizer"].nunique() > 1
    show_pub = not pub.empty
    first_of = rows.drop_duplicates("method").set_index("method")
    for task in tasks:
        sub_t = agg[agg["task"] == task]
        task_names = {task, str(rows.loc[rows["task"] == task, "task_name"].iloc[0])}
        parts.append(f'<section class="task" id="task-{e(slugify(task))}-{_h(task)}"><h2>{e(task)}</h2>')
        for sp in sorted(set(sub_t["target_sparsity"])):
            sub = sub_t[sub_t["target_sparsity"] == sp]
            sid = f"t-{slugify(task)}-{_h(task)}-s{_pct(sp).replace('.', '_')}"
            parts.append(f'<div class="table-wrap"><h3 id="{e(sid)}">sparsity {e(_pct(sp))} %</h3>')
            head = [("rank", "num", "Rank"), ("method", "text", "Method"), ("family", "text", "Family")]
            if multi_opt:
                head.append(("optimizer", "text", "Optimiser"))
            head += [("top1", "num", "Top-1 (%)"), ("std", "num", "± std"), ("ci", "num", "95 % CI"),
                     ("seeds", "num", "Seeds"),
                     ("gap", "num", "Δ dense"), ("achieved", "num", "Achieved (%)"),
                     ("flops", "num", "Train FLOPs (× dense)"), ("time", "num", "Train time (× dense)"),
                     ("collapsed", "num", "Collapsed"), ("divfail", "num", "Diverged / failed")]
            if show_pub:
                head.append(("published", "num", "Published top-1"))
            head.append(("runs", "num", "Runs"))
            parts.append('<table class="lb sortable"><thead><tr>' + "".join(
                f'<th data-col="{k}" data-type="{t}"{" class=num" if t == "num" and k not in ("published",) else ""}>'
                f'{e(lbl)}</th>' for k, t, lbl in head) + "</tr></thead><tbody>")
            for r in sub.to_dict("records"):
                method = str(r["method"])
                href = f"methods/{pages[method]}#{_anchor(task, r['target_sparsity'], r['optimizer'])}"
                names = _match_names({**r, "base_method": first_of.at[method, "base_method"]})
                hits = _published_match(pub, task_names, names, r["target_sparsity"]) if show_pub else []
                cells = [
                    f'<td class="num" data-sort="{_sort_attr(r["rank"])}">{"—" if pd.isna(r["rank"]) else int(r["rank"])}</td>',
                    f'<td class="method"><a href="{e(href)}">{e(method)}</a></td>',
                    f'<td data-sort="{e(r["family"])}">{_fam_badge(r["family"])}</td>',
                ]
                if multi_opt:
                    cells.append(f"<td>{e(r['optimizer'])}</td>")
                cells += [
                    f'<td class="num" data-sort="{_sort_attr(r["top1_mean"])}">{_fmt(r["top1_mean"])}</td>',
                    f'<td class="num" data-sort="{_sort_attr(r["top1_std"])}">{_fmt(r["top1_std"])}</td>',
                    f'<td class="num" data-sort="{_sort_attr(r["top1_ci_lo"])}">{_ci(r)}</td>',
                    f'<td class="num">{int(r["seeds"])}</td>',
                    f'<td class="num" data-sort="{_sort_attr(r["gap_to_dense"])}">{_fmt(r["gap_to_dense"], "+.2f")}</td>',
                    f'<td class="num" data-sort="{_sort_attr(r["achieved_sparsity"])}">{_fmt(100 * _num(r["achieved_sparsity"]))}</td>',
                    f'<td class="num" data-sort="{_sort_attr(r["train_flops_rel"])}">{_fmt(r["train_flops_rel"], ".3f")}</td>',
                    f'<td class="num" data-sort="{_sort_attr(r["train_time_rel"])}">{_fmt(r["train_time_rel"])}</td>',
                    f'<td class="num">{int(r["collapsed"])}</td>',
                    f'<td class="num" data-sort="{int(r["diverged"]) + int(r["failed"])}">{int(r["diverged"])} / {int(r["failed"])}</td>',
                ]
                if show_pub:
                    cells.append(f'<td data-sort="{_sort_attr(hits[0]["top1"]) if hits else ""}">{_published_text(hits)}</td>')
                cells.append(f'<td class="num" data-sort="{len(r["run_ids"])}"><a href="{e(href)}" '
                             f'title="{e(" ".join(r["run_ids"]))}">{len(r["run_ids"])}</a></td>')
                parts.append(f'<tr data-family="{e(r["family"])}" data-method="{e(method)}">' + "".join(cells) + "</tr>")
            parts.append('</tbody></table><p class="no-match muted" hidden>No rows match the filters.</p></div>')
        parts.append("</section>")
    parts.append('<section id="methods"><h2>Methods</h2><ul>')
    for method in sorted(pages):
        fam = first_of.at[method, "family"]
        parts.append(f'<li><a href="methods/{e(pages[method])}">{e(method)}</a> {_fam_badge(fam)}</li>')
    parts.append("</ul></section>")
    return _page(title, "\n".join(parts), generated=generated)


def _h(text: Any) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:6]


def _anchor(task: str, sparsity: Any, optimizer: Any) -> str:
    return f"r-{slugify(task)}-{_h(task)}-{_pct(sparsity).replace('.', '_')}-{slugify(optimizer)}"


def _args_table(title: str, args: Any) -> str:
    if not isinstance(args, Mapping) or not args:
        return f"<p><strong>{e(title)}</strong>: none</p>"
    body = "".join(f"<tr><td><code>{e(k)}</code></td><td><code>{e(_short(v))}</code></td></tr>"
                   for k, v in sorted(args.items(), key=lambda kv: str(kv[0])))
    return f"<p><strong>{e(title)}</strong></p><table class=\"args\"><tbody>{body}</tbody></table>"


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


def _graphon_section(mrows: pd.DataFrame, method: str, task: str, out: _Output, stem: str) -> str:
    ok = mrows[(mrows["status"] == "ok") & mrows["graphon"].map(lambda g: isinstance(g, Mapping) and bool(g))] \
        if "graphon" in mrows.columns else mrows.iloc[0:0]
    if ok.empty:
        return ('<p class="muted">No graphon summary for these runs (run the grid with '
                "<code>analysis = { graphon = true }</code> to get one).</p>")
    parts = []
    sparsities = sorted(set(ok["target_sparsity"]))
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
            parts.append(f'<p>Per-layer graphon statistics (mean over seeds; rows = layers, columns = target '
                         f'sparsity):</p><img class="plot" src="../{e(rel)}" alt="{e("graphon layer statistics of " + method)}">')
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
                parts.append(f'<img class="plot" src="../{e(rel)}" alt="{e("step graphon " + t)}">')
    spectra = []
    for s in sparsities:
        eigs = [g.get("ntk_eigenvalues") for g in ok.loc[ok["target_sparsity"] == s, "graphon"]]
        eigs = [x for x in eigs if isinstance(x, list) and x]
        if eigs:
            spectra.append({"label": f"{_pct(s)}% (seed of run 1 of {len(eigs)})", "eig": [_num(v) for v in eigs[0]]})
    if spectra:
        rel = out.image(f"img/{stem}-ntk.png", {"s": spectra, "t": f"{method} — {task}"},
                        functools.partial(plots.ntk_spectrum, spectra, f"Graphon NTK spectrum — {task}"))
        parts.append(f'<img class="plot" src="../{e(rel)}" alt="{e("NTK spectrum of " + method)}">')
    else:
        parts.append('<p class="muted">No NTK spectrum in the graphon summaries of these runs.</p>')
    scalar_keys = sorted({k for g in ok["graphon"] for k, v in g.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if scalar_keys:
        head = "".join(f'<th class="num">{e(_pct(s))} %</th>' for s in sparsities)
        body = []
        for k in scalar_keys:
            vals = []
            for s in sparsities:
                xs = [_num(g.get(k)) for g in ok.loc[ok["target_sparsity"] == s, "graphon"]]
                xs = [x for x in xs if math.isfinite(x)]
                vals.append(f'<td class="num">{_fmt(np.mean(xs), ".4g") if xs else "—"}</td>')
            body.append(f"<tr><td><code>{e(k)}</code></td>{''.join(vals)}</tr>")
        parts.append(f"<table><thead><tr><th>summary (mean over seeds)</th>{head}</tr></thead>"
                     f"<tbody>{''.join(body)}</tbody></table>")
    return "\n".join(parts)


def _method_page(method: str, rows: pd.DataFrame, agg: pd.DataFrame, pub: pd.DataFrame,
                 curves: Mapping[str, Sequence[Mapping[str, Any]]], info: Mapping[str, Any], out: _Output,
                 title: str) -> bytes:
    mrows = rows[rows["method"] == method]
    first = mrows.iloc[0]
    stem = page_name(method)[:-5]
    parts = [f"<h1>{e(method)}</h1>",
             f"<p>{_fam_badge(first['family'])} pruner <code>{e(first['pruner'])}</code>"
             + (f", allocation <code>{e(first['allocation'])}</code>" if first["family"] != "dense" else "")
             + f", reparam <code>{e(first['reparam'])}</code></p>"]
    if info:
        if info.get("description"):
            parts.append(f'<p class="description">{e(info["description"])}</p>')
        paper, url = info.get("paper"), _safe_url(info.get("url"))
        if paper or info.get("url"):  # a URL that is not http(s) is shown as text, never linked
            link = f' <a href="{e(url)}" rel="noopener noreferrer">{e(url)}</a>' if url else \
                (f" <code>{e(info.get('url'))}</code>" if info.get("url") else "")
            parts.append(f"<p>Source: {e(paper or '')}{link}</p>")
    parts.append(_args_table("Pruner hyperparameters", first["pruner_args"]))
    parts.append(_args_table("Allocation options", first["allocation_args"]))
    if first["family"] == "reparam":
        parts.append(_args_table("Reparam hyperparameters", first["reparam_args"]))
    magg = agg[agg["method"] == method]
    for task in list(dict.fromkeys(magg["task"])):
        tag = agg[agg["task"] == task]
        task_rows = rows[rows["task"] == task]
        task_names = {task, str(task_rows["task_name"].iloc[0])}
        parts.append(f'<section><h2 id="task-{e(slugify(task))}-{_h(task)}">{e(task)}</h2>')
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
            names = _match_names({**first.to_dict(), "method": method})
            pub_pts = [{"x": 100 * float(sp), "y": float(h["top1"]), "source": str(h["source"])}
                       for sp in mine["target_sparsity"] for h in _published_match(pub, task_names, names, sp)]
            dense = tag_o["dense_top1"].dropna()
            dense_v = float(dense.iloc[0]) if len(dense) else None
            if first["family"] != "dense" and any(s["method"] == method for s in series):
                ptitle = f"{task} ({opt})"
                rel = out.image(f"img/{stem}-{slugify(task)}-{_h(task)}-{slugify(opt)}-acc.png",
                                {"series": series, "h": method, "t": ptitle, "d": dense_v, "p": pub_pts},
                                functools.partial(plots.accuracy_vs_sparsity, series, method, ptitle, dense_v, pub_pts))
                parts.append(f'<img class="plot acc" src="../{e(rel)}" alt="{e("top-1 vs sparsity, " + method + ", " + task)}">')
            # numbers behind the plot
            head = ["sparsity (%)", "rank", "top-1 (%) ± std [95 % CI]", "seeds", "Δ dense", "achieved (%)", "train FLOPs (× dense)",
                    "collapsed", "diverged / failed", "published", "run ids"]
            body = []
            for r in mine.to_dict("records"):
                hits = _published_match(pub, task_names, names, r["target_sparsity"])
                body.append(
                    f'<tr id="{e(_anchor(task, r["target_sparsity"], opt))}"><td class="num">{e(_pct(r["target_sparsity"]))}</td>'
                    f'<td class="num">{"—" if pd.isna(r["rank"]) else int(r["rank"])}</td>'
                    f'<td class="num">{_top1_cell(r)}</td><td class="num">{int(r["seeds"])}</td>'
                    f'<td class="num">{_fmt(r["gap_to_dense"], "+.2f")}</td>'
                    f'<td class="num">{_fmt(100 * _num(r["achieved_sparsity"]))}</td>'
                    f'<td class="num">{_fmt(r["train_flops_rel"], ".3f")}</td><td class="num">{int(r["collapsed"])}</td>'
                    f'<td class="num">{int(r["diverged"])} / {int(r["failed"])}</td><td>{_published_text(hits) or "—"}</td>'
                    f'<td>{" ".join(f"<code class=runid>{e(x)}</code>" for x in r["run_ids"])}</td></tr>')
            parts.append(f"<h3>Numbers ({e(opt)})</h3><table><thead><tr>"
                         + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr></thead><tbody>{''.join(body)}</tbody></table>")
        trows = mrows[mrows["task"] == task]
        flips = []
        for sp in sorted(set(trows["target_sparsity"])):
            cm = _curve_means(sorted(trows.loc[trows["target_sparsity"] == sp, "run_id"]), curves)
            if cm:
                flips.append({"label": f"{_pct(sp)}%", "epoch": cm[0], "flips": cm[1]})
        parts.append("<h3>Sign flips over training</h3>")
        if flips:
            rel = out.image(f"img/{stem}-{slugify(task)}-{_h(task)}-flips.png", {"f": flips, "t": task},
                            functools.partial(plots.sign_flips, flips, f"{method} — {task} (mean over seeds)"))
            parts.append(f'<img class="plot flips" src="../{e(rel)}" alt="{e("sign flips, " + method + ", " + task)}">')
        else:
            parts.append('<p class="muted">No training curves were given for these runs.</p>')
        parts.append("<h3>Graphon and NTK</h3>")
        parts.append(_graphon_section(trows, method, task, out, f"{stem}-{slugify(task)}-{_h(task)}"))
        parts.append("<h3>Runs</h3><table><thead><tr><th>run id</th><th>sparsity (%)</th><th>seed</th><th>status</th>"
                     "<th>final top-1 (%)</th><th>achieved (%)</th><th>spec</th></tr></thead><tbody>")
        for r in trows.sort_values(["target_sparsity", "seed", "run_id"]).to_dict("records"):
            spec = r.get("spec")
            reason = f' <span class="muted">{e(r.get("reason"))}</span>' if r.get("reason") else ""
            parts.append(
                f'<tr><td><code class="runid">{e(r["run_id"])}</code></td><td class="num">{e(_pct(r["target_sparsity"]))}</td>'
                f'<td class="num">{e(r["seed"])}</td><td>{e(r["status"])}{reason}</td>'
                f'<td class="num">{_fmt(r["final_top1"])}</td><td class="num">{_fmt(100 * _num(r["achieved_sparsity"]))}</td>'
                f'<td><details><summary>spec</summary><pre>{e(_json(spec))}</pre></details></td></tr>')
        parts.append("</tbody></table></section>")
    return _page(f"{method} — {title}", "\n".join(parts), depth=1)


def _pairs_page(rows: pd.DataFrame, agg: pd.DataFrame, out: _Output, title: str) -> bytes:
    parts = ["<h1>Pruner × reparam</h1>",
             "<p class=\"note\">Cell = top-1 mean of pruner + reparam minus the top-1 mean of the same pruner "
             "(same hyperparameters, task, optimiser and sparsity) with plain weights, in percentage points. "
             "Blank: no plain run to compare with.</p>"]
    if agg.empty or not (agg["family"] == "reparam").any():
        parts.append('<p class="empty">No reparam runs yet: add <code>[[reparams]]</code> to a grid.</p>')
        return _page(f"Pruner × reparam — {title}", "\n".join(parts))
    base_of = rows.drop_duplicates("method").set_index("method")["base_method"].to_dict()
    a = agg.assign(base=agg["method"].map(base_of))
    a["variant"] = [m[len(b):] if f == "reparam" else "none" for m, b, f in zip(a["method"], a["base"], a["family"])]
    for (task, opt, sp), sub in a.groupby(["task", "optimizer", "target_sparsity"], sort=True):
        if not (sub["family"] == "reparam").any():
            continue
        plain = sub[sub["family"] != "reparam"].set_index("base")["top1_mean"].to_dict()
        rep = sub[sub["family"] == "reparam"]
        prs = sorted(set(rep["base"]))
        cols = sorted(set(rep["variant"]))
        gap = np.full((len(prs), len(cols)), np.nan)
        for r in rep.itertuples():
            base_v = _num(plain.get(r.base))
            gap[prs.index(r.base), cols.index(r.variant)] = _num(r.top1_mean) - base_v
        label = f"{task} — {opt} — sparsity {_pct(sp)} %"
        parts.append(f"<h2>{e(label)}</h2>")
        rel = out.image(f"img/pairs-{slugify(task)}-{_h(task)}-{slugify(opt)}-{_pct(sp).replace('.', '_')}.png",
                        {"r": prs, "c": cols, "g": gap.tolist(), "t": label},
                        functools.partial(plots.pairs_heatmap, prs, cols, gap, label))
        parts.append(f'<img class="plot" src="{e(rel)}" alt="{e("pruner × reparam gaps, " + label)}">')
        body = "".join(f"<tr><th>{e(p)}</th>" + "".join(f'<td class="num">{_fmt(gap[i, j], "+.2f")}</td>'
                                                        for j in range(len(cols))) + "</tr>" for i, p in enumerate(prs))
        parts.append("<table><thead><tr><th>pruner</th>" + "".join(f"<th>{e(c)}</th>" for c in cols)
                     + f"</tr></thead><tbody>{body}</tbody></table>")
    return _page(f"Pruner × reparam — {title}", "\n".join(parts))


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
    produced.files["index.html"] = _index(agg, rows, pub, pages, _generated_stamp(), exports, title)
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
