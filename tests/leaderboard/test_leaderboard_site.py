"""The static site: deterministic and incremental builds, HTML escaping, empty store, serving."""
from __future__ import annotations

import html.parser
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from leaderboard import plots
from leaderboard.site import GENERATED_PREFIX, build, build_site, make_server, page_name, slugify
from pruners.registry import ConfigError

EVIL_PRUNER = "<script>alert(1)</script>"
EVIL_ARG = '"><img src=x onerror="window.__xss=1">'
EVIL_DESC = '<b onmouseover="alert(3)">bold</b><script>alert(4)</script>'
EVIL_TASK = "t&<i>ask</i>\"'"


def files_of(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def test_rebuild_is_byte_identical_and_incremental(tmp_path, synth, monkeypatch):
    rich_df = synth.make_df(synth.rich_runs(tasks=("toy",), sparsities=(0.5, 0.9)))
    published = [{"task": "toy", "method": "magnitude", "sparsity": 0.9, "top1": 88.5, "source": "Paper 2020, Tab. 1"}]
    curves = synth.curves_for(rich_df)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")
    build_site(rich_df, tmp_path / "a", published=published, curves=curves)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000100")
    # rows in another order: the same results
    build_site(rich_df.sample(frac=1.0, random_state=3), tmp_path / "b", published=published, curves=curves)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys()
    assert sum(k.endswith(".png") for k in a) >= 8
    assert any(k.startswith("methods/") for k in a)
    differ = [k for k in a if a[k] != b[k]]
    assert differ == ["index.html"]
    la, lb = a["index.html"].split(b"\n"), b["index.html"].split(b"\n")
    changed = [(x, y) for x, y in zip(la, lb) if x != y]
    assert len(la) == len(lb) and len(changed) == 1
    assert changed[0][0].startswith(GENERATED_PREFIX.encode()) and b"2001-09-09T01:46:40Z" in changed[0][0]
    # the PNGs carry no Software / date chunk
    png = next(v for k, v in a.items() if k.endswith(".png"))
    assert b"Software" not in png and b"tIME" not in png

    # same data again into a: nothing written, nothing re-drawn, mtimes untouched
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}
    rep = build(rich_df, tmp_path / "a", published=published, curves=curves)
    assert rep.written == [] and rep.rendered == [] and rep.removed == []
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()} == mtimes

    # drop one method: its page and figures go, the index changes, other pages stay
    rep = build(rich_df[rich_df["pruner"] != "rigl"], tmp_path / "a", published=published, curves=curves)
    assert any(r.startswith("methods/rigl") for r in rep.removed)
    assert "index.html" in rep.written
    assert not any(p.name.startswith("rigl") for p in (tmp_path / "a").rglob("*"))
    # the dense pages show no other method: neither rewritten nor re-drawn
    assert f"methods/{page_name('dense')}" in rep.unchanged
    assert not any(r.startswith("img/dense") for r in rep.rendered + rep.written)


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


def evil_df(synth) -> pd.DataFrame:
    mk = synth.make_run
    runs = [mk(pruner="dense", task=EVIL_TASK, seed=s, final_top1=90.0 + s) for s in (0, 1)]
    for s in (0, 1):
        for sp in (0.5, 0.9):
            runs.append(mk(pruner=EVIL_PRUNER, pruner_family="pai", pruner_args={"note": EVIL_ARG}, task=EVIL_TASK,
                           allocation="<u>alloc</u>", seed=s, target_sparsity=sp, final_top1=80.0 - 10 * sp + s,
                           status="ok" if s == 0 or sp == 0.5 else "failed",
                           reason="" if s == 0 or sp == 0.5 else "<iframe src=x></iframe>",
                           graphon={"layers": {"<svg onload=alert(5)>": {"density": 0.5, "heterogeneity": 0.1}},
                                    "graphon_<em>x</em>": 0.3}))
            runs.append(mk(pruner="magnitude", reparam="<b>rp</b>", reparam_args={"k": "<script>x</script>"},
                           task=EVIL_TASK, seed=s, target_sparsity=sp, final_top1=70.0))
            runs.append(mk(pruner="magnitude", task=EVIL_TASK, seed=s, target_sparsity=sp, final_top1=71.0))
    return synth.make_df(runs)


def test_text_from_specs_and_plugins_is_escaped_everywhere(tmp_path, synth):
    df = evil_df(synth)
    info = {EVIL_PRUNER: {"description": EVIL_DESC, "paper": "<a href=javascript:alert(6)>paper</a>",
                          "url": "javascript:alert(7)"}}
    published = [{"task": EVIL_TASK, "method": EVIL_PRUNER, "sparsity": 0.5, "top1": 77.0,
                  "source": "<img src=y onerror=alert(8)>"}]
    build_site(df, tmp_path, published=published, curves=synth.curves_for(df), pruner_info=info)
    pages = sorted(tmp_path.rglob("*.html"))
    assert len(pages) >= 5
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
    for needle in (EVIL_PRUNER, EVIL_ARG, EVIL_DESC, "<u>alloc</u>", "<iframe src=x></iframe>", EVIL_TASK,
                   "<img src=y onerror=alert(8)>", "javascript:alert(7)", "graphon_<em>x</em>"):
        assert needle in seen_text, needle
    # attribute values round-trip to the original text (escaped with quote=True)
    index = Collect()
    index.feed((tmp_path / "index.html").read_text(encoding="utf-8"))
    methods = {a.get("data-method") for t, a in index.tags if t == "tr" and "data-method" in a}
    assert any(m.startswith(EVIL_PRUNER) for m in methods)
    # safe file names
    for page in pages:
        assert all(c.isalnum() or c in "-._" for c in page.name), page.name


def test_empty_store_builds_a_site_that_says_so(tmp_path, synth):
    for df in (synth.make_df([]), None):
        index = build_site(df, tmp_path / "site")
        text = index.read_text(encoding="utf-8")
        assert "No results yet" in text
        assert (tmp_path / "site" / "assets" / "leaderboard.js").is_file()
        assert "No reparam runs yet" in (tmp_path / "site" / "pairs.html").read_text(encoding="utf-8")


def test_method_pages_hold_plots_numbers_runs_and_published(tmp_path, synth):
    rich_df = synth.make_df(synth.rich_runs(sparsities=(0.5, 0.9)))
    published = [{"task": "toy", "method": "magnitude", "sparsity": 0.9, "top1": 88.5, "source": "Paper 2020"}]
    build_site(rich_df, tmp_path, published=published, curves=synth.curves_for(rich_df))
    page = (tmp_path / "methods" / page_name("magnitude/global")).read_text(encoding="utf-8")
    for rid in rich_df.loc[rich_df["pruner"].eq("magnitude") & rich_df["reparam"].eq("none"), "run_id"]:
        assert rid in page
    assert "88.50 (Paper 2020)" in page and "-acc.png" in page and "-flips.png" in page
    assert "-graphon-layers.png" in page and "-ntk.png" in page
    # toy2 has no graphon summaries: the page says so
    assert "No graphon summary for these runs" in page
    assert "88.50 (Paper 2020)" in (tmp_path / "index.html").read_text(encoding="utf-8")
    pairs = (tmp_path / "pairs.html").read_text(encoding="utf-8")
    # signin: top-1 of magnitude+signin minus magnitude's, +0.30 everywhere
    assert pairs.count("+0.30") == 4 and "pairs-" in pairs  # 2 tasks x 2 sparsities, one cell each
    # without curves: said on the page
    build_site(rich_df[rich_df["pruner"] == "dense"], tmp_path / "nocurves")
    assert "No training curves" in (tmp_path / "nocurves" / "methods" / page_name("dense")).read_text(encoding="utf-8")


def test_bad_input(tmp_path, rich_df):
    with pytest.raises(ConfigError, match="published"):
        build_site(rich_df, tmp_path, published=[{"task": "toy", "method": "m"}])
    with pytest.raises(ConfigError, match="fraction"):
        build_site(rich_df, tmp_path, published=[{"task": "toy", "method": "m", "sparsity": 90, "top1": 1.0, "source": "s"}])
    with pytest.raises(ConfigError, match="final_top1"):
        build_site(rich_df.drop(columns=["final_top1"]), tmp_path)
    with pytest.raises(ConfigError, match="no leaderboard site"):
        make_server(tmp_path / "nothing", 0)


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
            assert r.status == 200 and b"sparsebench leaderboard" in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/assets/leaderboard.css", timeout=10) as r:
            assert r.status == 200
    finally:
        server.shutdown()
        server.server_close()
