"""The site in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Skips with the reason when Chromium or the ``playwright`` package is missing (CI installs both:
``apt-get install -y chromium`` and ``pip install playwright``; never ``playwright install``: no browser
is downloaded).  Screenshots go to ``tests/artifacts/`` (or ``$SPARSEBENCH_ARTIFACTS``).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from leaderboard.site import make_server, page_name

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium to run the browser test",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install playwright "
                               "(the browser is Debian's chromium; never run `playwright install`)")


def artifacts_dir() -> Path:
    env = os.environ.get("SPARSEBENCH_ARTIFACTS")
    if env:
        path = Path(env)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(__file__).resolve().parents[1] / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# test artifacts (screenshots); never committed\n*\n", encoding="utf-8")
    return path


@pytest.fixture
def served(built_site):
    """The shared site (PaI, DST, reparam and a hostile pruner) on a free localhost port."""
    server = make_server(built_site.path, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield built_site.path, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


COLUMN_JS = """(args) => {
  const [table, col] = args;
  const idx = Array.from(table.tHead.rows[0].cells).findIndex(th => th.dataset.col === col);
  return Array.from(table.tBodies[0].rows).map(r => [r.dataset.method, r.cells[idx].textContent.trim(), !r.hidden]);
}"""

SAFETY_JS = """() => ({
  xss: window.__xss === undefined ? null : window.__xss,
  scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),
  injected: document.querySelectorAll('b, u, i, em, svg, iframe, object, embed').length,
  onattrs: Array.from(document.querySelectorAll('*')).filter(
      el => Array.from(el.attributes).some(a => a.name.toLowerCase().startsWith('on'))).length,
  jslinks: Array.from(document.links).filter(a => a.href.toLowerCase().startsWith('javascript')).length,
  text: document.body.textContent,
})"""


def _check_safe(page, where: str) -> str:
    s = page.evaluate(SAFETY_JS)
    assert s["xss"] is None, where
    assert len(s["scripts"]) == 1 and s["scripts"][0].endswith("assets/leaderboard.js"), (where, s["scripts"])
    assert (s["injected"], s["onattrs"], s["jslinks"]) == (0, 0, 0), (where, s)
    return s["text"]


def test_site_in_headless_chromium(served, synth):
    site, base = served
    shots = artifacts_dir()
    sp = sync_api
    with sp.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            dialogs, errors, requests = [], [], []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(base + "index.html", wait_until="load")

            # the toy task at 90 %: 4 methods with distinct means
            table = page.locator("table.lb").filter(has=page.locator('tr[data-method="rigl/erk"]')).nth(1)
            before = page.evaluate(COLUMN_JS, [table.element_handle(), "top1"])
            assert len(before) >= 4
            vals = [float(v) for _, v, _ in before]
            assert vals == sorted(vals, reverse=True)  # built in rank order
            table.locator('th[data-col="top1"]').click()
            asc = page.evaluate(COLUMN_JS, [table.element_handle(), "top1"])
            assert [float(v) for _, v, _ in asc] == sorted(vals)
            assert [m for m, _, _ in asc] == [m for m, _, _ in reversed(before)]
            assert table.locator('th[data-col="top1"]').get_attribute("aria-sort") == "ascending"
            table.locator('th[data-col="top1"]').click()
            desc = page.evaluate(COLUMN_JS, [table.element_handle(), "top1"])
            assert [float(v) for _, v, _ in desc] == sorted(vals, reverse=True)
            table.locator('th[data-col="method"]').click()
            by_name = [m for m, _, _ in page.evaluate(COLUMN_JS, [table.element_handle(), "method"])]
            assert by_name == sorted(by_name, key=str.lower)

            # family filter: PaI rows hidden, the DST and reparam rows stay
            page.locator('input.family-filter[value="pai"]').uncheck()
            rows = page.evaluate(COLUMN_JS, [table.element_handle(), "method"])
            pai = {"magnitude/global", "random/uniform"}
            assert [m for m, _, shown in rows if shown] and all(not shown for m, _, shown in rows if m in pai)
            assert all(shown for m, _, shown in rows if m not in pai)
            assert page.locator('tr[data-family="pai"]').first.is_hidden()
            assert page.locator('tr[data-family="dst"]').first.is_visible()
            page.locator('input.family-filter[value="pai"]').check()
            # pruner facet: only the rigl rows stay (issue 21 (2))
            page.locator('select.facet-filter[data-facet="pruner"]').select_option("rigl")
            rows = page.evaluate(COLUMN_JS, [table.element_handle(), "method"])
            assert [m for m, _, shown in rows if shown] == ["rigl/erk"]
            page.locator('select.facet-filter[data-facet="pruner"]').select_option("")
            page.locator("#search").fill("RIGL")
            rows = page.evaluate(COLUMN_JS, [table.element_handle(), "method"])
            assert [m for m, _, shown in rows if shown] == ["rigl/erk"]
            page.locator("#search").fill("")
            page.screenshot(path=str(shots / "leaderboard-index.png"), full_page=True)
            text = _check_safe(page, "index")
            assert synth.EVIL_PRUNER in text and synth.EVIL_TASK in text

            # a method page: its figures load
            table.locator("a", has_text="magnitude/global").first.click()
            page.wait_for_load_state("load")
            assert "/methods/" in page.url
            imgs = page.evaluate("() => Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
            assert len(imgs) >= 4 and all(ok and w > 0 for _, ok, w in imgs), imgs
            page.screenshot(path=str(shots / "leaderboard-method.png"), full_page=True)

            # the hostile pruner's page and the pairs page: text only, no dialog, no injected element
            page.goto(base + "methods/" + page_name(f"{synth.EVIL_PRUNER}/{synth.EVIL_ALLOC}"), wait_until="load")
            text = _check_safe(page, "hostile method page")
            assert synth.EVIL_PRUNER in text and synth.EVIL_DESC in text and "javascript:alert(7)" in text
            assert "\u202eevil <script>alert(9)</script>" in text and '1" onerror="alert(10)' in text  # author, version
            page.screenshot(path=str(shots / "leaderboard-hostile.png"), full_page=True)
            page.goto(base + "pairs.html", wait_until="load")
            _check_safe(page, "pairs")
            assert all(w > 0 for w in page.evaluate("() => Array.from(document.images).map(i => i.naturalWidth)"))

            # from a file:// URL, without the server
            page.goto((site / "index.html").as_uri(), wait_until="load")
            page.locator("table.lb").first.locator('th[data-col="method"]').click()
            assert page.locator("table.lb").first.locator("th[aria-sort]").count() == 1
            page.goto((site / "methods" / page_name("rigl/erk")).as_uri(), wait_until="load")
            assert all(w > 0 for w in page.evaluate("() => Array.from(document.images).map(i => i.naturalWidth)"))

            page.wait_for_timeout(200)  # let any late handler fire before checking dialogs
            assert dialogs == [] and errors == []
            assert all(u.startswith((base, "file://", "data:")) for u in requests), requests
        finally:
            browser.close()
