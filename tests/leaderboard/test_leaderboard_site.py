"""The static site: deterministic and incremental builds, HTML escaping, empty store, serving."""
from __future__ import annotations

import datetime as dt
import html.parser
import threading
import urllib.request
from pathlib import Path

import pytest

from leaderboard import plots
from leaderboard.site import GENERATED_PREFIX, build, build_site, make_server, page_name, read_published, slugify
from pruners.registry import ConfigError


def files_of(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def test_rebuild_is_byte_identical_and_incremental(tmp_path, built_site, synth, monkeypatch):
    df = built_site.df
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000100")
    # rows in another order: the same results, built into a fresh folder
    build_site(df.sample(frac=1.0, random_state=3), tmp_path / "b", **synth.build_inputs(df))
    a, b = files_of(built_site.path), files_of(tmp_path / "b")
    assert a.keys() == b.keys()
    assert sum(k.endswith(".png") for k in a) >= 15
    differ = [k for k in a if a[k] != b[k]]
    assert differ == ["index.html"]
    la, lb = a["index.html"].split(b"\n"), b["index.html"].split(b"\n")
    changed = [(x, y) for x, y in zip(la, lb) if x != y]
    assert len(la) == len(lb) and len(changed) == 1
    stamp = dt.datetime.fromtimestamp(int(synth.SITE_EPOCH), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert changed[0][0] == f"{GENERATED_PREFIX}{stamp}</p>".encode()
    # the PNGs carry no Software / date chunk
    png = next(v for k, v in a.items() if k.endswith(".png"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in png and b"tIME" not in png

    # same data again into b: nothing written, nothing re-drawn, mtimes untouched
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
    rep = build(df, tmp_path / "b", **synth.build_inputs(df))
    assert rep.written == [] and rep.rendered == [] and rep.removed == []
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()} == mtimes

    # drop one method: its page and figures go, the index changes, pages not showing it stay
    rep = build(df[df["pruner"] != "rigl"], tmp_path / "b", **synth.build_inputs(df))
    assert any(r.startswith("methods/rigl") for r in rep.removed)
    assert "index.html" in rep.written
    assert not any(p.name.startswith("rigl") for p in (tmp_path / "b").rglob("*"))
    assert f"methods/{page_name('dense')}" in rep.unchanged
    assert not any(r.startswith("img/dense") for r in rep.rendered + rep.written)
    # a stranger's file in the folder is left alone
    (tmp_path / "b" / "notes.txt").write_text("mine")
    build(df[df["pruner"] == "dense"], tmp_path / "b")
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"


def test_plots_are_deterministic():
    series = [{"method": "a", "x": [50.0, 90.0], "y": [90.0, 80.0], "err": [1.0, 2.0]},
              {"method": "b $x$", "x": [50.0, 90.0], "y": [85.0, 70.0], "err": [0.0, 0.0]}]
    one = plots.accuracy_vs_sparsity(series, "b $x$", "t", 95.0, [{"x": 90.0, "y": 81.0, "source": "s"}])
    two = plots.accuracy_vs_sparsity(series, "b $x$", "t", 95.0, [{"x": 90.0, "y": 81.0, "source": "s"}])
    assert one == two and one[:8] == b"\x89PNG\r\n\x1a\n"
    assert one != plots.accuracy_vs_sparsity(series, "a", "t", 95.0)


class Collect(html.parser.HTMLParser):
    """Tags, attributes and text of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_text_from_specs_and_plugins_is_escaped_everywhere(built_site, synth):
    site = built_site.path
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 8
    seen_text = ""
    for page in pages:
        p = Collect()
        p.feed(page.read_text(encoding="utf-8"))
        tags = {t for t, _ in p.tags}
        assert not tags & {"b", "u", "i", "em", "svg", "iframe"}, (page, tags)
        scripts = [a for t, a in p.tags if t == "script"]
        assert len(scripts) == 1 and scripts[0]["src"].endswith("assets/leaderboard.js"), page
        for tag, attrs in p.tags:
            assert not any(k.startswith("on") for k in attrs), (page, tag, attrs)
            if tag == "img":
                assert attrs["src"].startswith(("img/", "../img/")), (page, attrs)
            if tag == "a":
                assert not attrs.get("href", "").lower().startswith("javascript"), (page, attrs)
        seen_text += "".join(p.text)
    for needle in (synth.EVIL_PRUNER, synth.EVIL_ARG, synth.EVIL_DESC, synth.EVIL_ALLOC, "<iframe src=x></iframe>",
                   synth.EVIL_TASK, "<img src=y onerror=alert(8)>", "javascript:alert(7)", "graphon_<em>x</em>",
                   "<b>rp</b>", "<script>x</script>"):
        assert needle in seen_text, needle
    # attribute values round-trip to the original text (escaped with quote=True)
    index = Collect()
    index.feed((site / "index.html").read_text(encoding="utf-8"))
    methods = {a.get("data-method") for t, a in index.tags if t == "tr" and "data-method" in a}
    assert f"{synth.EVIL_PRUNER}/{synth.EVIL_ALLOC}" in methods
    # safe file names
    for path in site.rglob("*"):
        assert all(c.isalnum() or c in "-._" for c in path.name), path.name


def test_empty_store_builds_a_site_that_says_so(tmp_path, synth):
    for df in (synth.make_df([]), None):
        index = build_site(df, tmp_path / "site")
        text = index.read_text(encoding="utf-8")
        assert "No results yet" in text
        assert (tmp_path / "site" / "assets" / "leaderboard.js").is_file()
        assert "No reparam runs yet" in (tmp_path / "site" / "pairs.html").read_text(encoding="utf-8")
        assert not list((tmp_path / "site").glob("methods/*.html"))


def test_method_pages_hold_plots_numbers_runs_and_published(tmp_path, built_site, synth):
    site, df = built_site.path, built_site.df
    page = (site / "methods" / page_name("magnitude/global")).read_text(encoding="utf-8")
    for rid in df.loc[df["pruner"].eq("magnitude") & df["reparam"].eq("none"), "run_id"]:
        assert rid in page
    assert "88.50 (Paper 2020)" in page and "-acc.png" in page and "-flips.png" in page
    assert "-graphon-layers.png" in page and "-ntk.png" in page
    # the magnitude runs of the hostile task have no graphon summaries: the page says so
    assert "No graphon summary for these runs" in page
    assert "88.50 (Paper 2020)" in (site / "index.html").read_text(encoding="utf-8")
    pairs = (site / "pairs.html").read_text(encoding="utf-8")
    # signin: the per-seed gain of magnitude+signin over magnitude is +0.30 in every seed at both sparsities
    # (interval [+0.30, +0.30], excludes zero: *); the hostile task -1.00
    import re
    cells = re.findall(r'<td class="num( sig)?">([^<]*)</td>', pairs)
    assert [c for c in cells if "+0.30" in c[1]] == [(" sig", "+0.30 [+0.30, +0.30]*")] * 2, cells
    assert sum("-1.00" in c[1] for c in cells) == 2 and "pairs-" in pairs
    # without curves: said on the page
    build_site(df[df["pruner"] == "dense"], tmp_path / "nocurves")
    assert "No training curves" in (tmp_path / "nocurves" / "methods" / page_name("dense")).read_text(encoding="utf-8")


def test_bad_input(tmp_path, synth):
    df = synth.make_df([synth.make_run()])
    with pytest.raises(ConfigError, match="published"):
        build_site(df, tmp_path, published=[{"task": "toy", "method": "m"}])
    with pytest.raises(ConfigError, match="fraction"):
        build_site(df, tmp_path, published=[{"task": "toy", "method": "m", "sparsity": 90, "top1": 1.0, "source": "s"}])
    with pytest.raises(ConfigError, match="final_top1"):
        build_site(df.drop(columns=["final_top1"]), tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        build_site(df, tmp_path / "file")
    with pytest.raises(ConfigError, match="no leaderboard site"):
        make_server(tmp_path / "nothing", 0)


def test_read_published(tmp_path):
    (tmp_path / "p.csv").write_text("task,method,sparsity,top1,source\ntoy,magnitude,0.9,88.5,Paper 2020\n")
    (tmp_path / "p.json").write_text('[{"task": "toy", "method": "snip", "sparsity": 0.5, "top1": 91, "source": "S"}]')
    assert read_published(tmp_path / "p.csv").to_dict("records") == [
        {"task": "toy", "method": "magnitude", "sparsity": 0.9, "top1": 88.5, "source": "Paper 2020"}]
    assert read_published(tmp_path / "p.json")["top1"].tolist() == [91.0]
    (tmp_path / "bad.json").write_text('{"task": "toy"}')
    (tmp_path / "p.xlsx").write_text("")
    for name, msg in (("bad.json", "JSON list"), ("missing.csv", "not found"), ("p.xlsx", "neither")):
        with pytest.raises(ConfigError, match=msg):
            read_published(tmp_path / name)


def test_slugs_are_safe_and_distinct():
    assert slugify("<script>alert(1)</script>") == "script-alert-1-script"
    assert slugify("../../etc") == "etc" and slugify("***") == "x"
    a, b = page_name("snip/global[a=1]"), page_name("snip/global[a=1 ]")
    assert a != b and a.startswith("snip-global-a-1-") and a.endswith(".html")


def test_serve(tmp_path):
    build_site(None, tmp_path)
    server = make_server(tmp_path, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as r:
            assert r.status == 200 and b"No results yet" in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/assets/leaderboard.css", timeout=10) as r:
            assert r.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_log_axis_tick_labels_are_plain_text():
    """Math text is off in the figures, so log-axis labels must not be matplotlib's $10^{k}$ strings."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    assert [plots._decade_label(v) for v in (1e-3, 1.0, 10.0, 1e4, 3e-2)] == ["1e-3", "1", "10", "1e4", "0.03"]
    with matplotlib.rc_context(plots.RC):
        fig = Figure()
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot([1, 2, 3], [1e-4, 1e-1, 1e2])
        ax.set_yscale("log")
        plots.plain_log_axis(ax.yaxis)
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and not any("$" in t or "mathdefault" in t for t in labels)
    assert "1e-4" in labels and "100" not in labels and "1e2" in labels


def test_best_at_each_sparsity_marks_the_methods_whose_intervals_overlap_the_best():
    """Issue 21 (2): A is best; B's interval overlaps A's (not distinguishable), C's does not; one seed
    (no interval) is never called a tie."""
    import pandas as pd

    from leaderboard.site import _best_rows

    def row(method, mean, lo, hi, sp=0.9):
        return {"method": method, "optimizer": "sgd", "target_sparsity": sp, "top1_mean": mean, "top1_std": 0.5,
                "top1_ci_lo": lo, "top1_ci_hi": hi}

    agg = pd.DataFrame([row("A", 90.0, 89.0, 91.0), row("B", 89.5, 88.8, 90.2), row("C", 85.0, 84.0, 86.0),
                        row("D", 95.0, float("nan"), float("nan"), sp=0.5), row("E", 94.0, 93.0, 95.0, sp=0.5)])
    best = _best_rows(agg, lambda r: f"#{r['method']}", multi_opt=False)
    assert [(b["pct"], b["method"], [t["method"] for t in b["ties"]], b["has_ci"]) for b in best] == \
        [("50", "D", [], False), ("90", "A", ["B"], True)]
    assert best[1]["top1"] == "90.00 ± 0.50 [89.00, 91.00]" and best[1]["ties"][0]["href"] == "#B"


def test_index_has_a_figure_and_best_table_per_task_and_facet_filters(built_site):
    html = (built_site.path / "index.html").read_text(encoding="utf-8")
    assert html.count('class="plot task-acc"') >= 2 and html.count("<h3>Best at each sparsity</h3>") >= 2
    for facet in ("pruner", "reparam", "schedule"):
        assert f'data-{facet}="' in html
    assert 'select class="facet-filter" data-facet="pruner"' in html and '<option value="rigl">rigl</option>' in html
