"""Screenshots of the leaderboard for docs/leaderboard.md: the index and one method page.

    python scripts/leaderboard_screenshots.py --out results/signin-ham [--method "rigl/erk+ham"]

Builds the site of ``--out`` into a temporary folder (``sparsebench leaderboard build``'s inputs: the
results, the training curves and the pruners' metadata), opens it in headless Chromium (Debian's
``/usr/bin/chromium`` driven by playwright; nothing is downloaded) and writes
``docs/figures/leaderboard-index.png`` and ``docs/figures/leaderboard-method.png``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.cli import main as cli  # noqa: E402
from leaderboard.site import page_name  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/signin-ham", help="results folder whose site is shot")
    ap.add_argument("--method", default="rigl/erk+ham", help="the method page to shoot")
    ap.add_argument("--to", default=str(ROOT / "docs" / "figures"), help="folder of the PNGs")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        if cli(["leaderboard", "build", "--out", args.out, "--site", str(site)]) != 0:
            raise SystemExit(1)
        to = Path(args.to)
        to.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto((site / "index.html").as_uri(), wait_until="load")
            page.screenshot(path=str(to / "leaderboard-index.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 1800},
                            full_page=True)
            page.goto((site / "methods" / page_name(args.method)).as_uri(), wait_until="load")
            page.screenshot(path=str(to / "leaderboard-method.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 1600},
                            full_page=True)
            browser.close()
    print(f"wrote {to / 'leaderboard-index.png'} and {to / 'leaderboard-method.png'}")


if __name__ == "__main__":
    main()
