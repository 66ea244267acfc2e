"""Render a reproduction's page ``NAME.md`` and the index ``README.md`` of the reproductions folder.

A page states the claim and its source, the published value beside ours, the verdict line, the
setting (with every choice we made), the measured table, the figure, the honest differences and the
command that regenerates it.  The index is generated from the registry; each row shows the verdict
read back from the page's ``<!-- verdict: ... -->`` marker (or "not run" when the page is missing).
"""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import pandas as pd

from benchmark.reproduce import REPRODUCTIONS, Reproduction, Result
from leaderboard.templating import markdown_env, md_cell as _md_escape

_MARKER = re.compile(r"<!-- verdict: (holds|does not hold); size: (full|quick)(?:; checks: (\d+)/(\d+))? -->")


def format_table(df: pd.DataFrame) -> str:
    """The result table as a GitHub Markdown table (floats with 4 significant digits)."""
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return _md_escape(str(v))

    header = "| " + " | ".join(_md_escape(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, sep, *rows])


def render_page(rep: Reproduction, result: Result) -> str:
    """The Markdown text of ``NAME.md`` (leaderboard/templates/reproduction.md)."""
    passed = sum(bool(v) for v in result.checks.values())
    return markdown_env().get_template("reproduction.md").render(
        status="holds" if result.verdict else "does not hold", size="quick" if result.quick else "full",
        checks_marker=f"; checks: {passed}/{len(result.checks)}" if result.checks else "",
        name=rep.name, quick_flag=" --quick" if result.quick else "", source=rep.source, claim=rep.claim,
        verdict_line=result.verdict_line, published=result.published, ours=result.ours,
        checks=list(result.checks.items()), setting=result.setting.strip(), table=format_table(result.table),
        figure=Path(result.figure).name if result.figure is not None else "",
        diagnosis=result.diagnosis.strip(), differences=list(result.differences),
        seconds=f"{result.seconds:.0f}", cpus=os.cpu_count(), machine=platform.machine())


def write_page(rep: Reproduction, result: Result, out_dir: Path) -> Path:
    """Write ``out_dir/NAME.md``; returns its path."""
    path = Path(out_dir) / f"{rep.name}.md"
    path.write_text(render_page(rep, result), encoding="utf-8")
    return path


def page_verdict(path: Path) -> str:
    """The verdict recorded in a page ("holds", "does not hold", "quick: holds", …) or "not run"."""
    if not path.exists():
        return "not run"
    m = _MARKER.search(path.read_text(encoding="utf-8"))
    if m is None:
        return "unknown"
    text = m.group(1)
    if m.group(3) is not None and m.group(1) == "does not hold":
        text += f" ({m.group(3)} of {m.group(4)} checks pass)"
    return text if m.group(2) == "full" else f"{text} (quick size)"


def render_index(out_dir: Path) -> str:
    """The Markdown text of the index, one row per registered reproduction (leaderboard/templates/reproductions-index.md)."""
    rows = [{"name": name, "source": rep.source, "claim": rep.claim,
             "verdict": page_verdict(Path(out_dir) / f"{name}.md")} for name, rep in REPRODUCTIONS.items()]
    return markdown_env().get_template("reproductions-index.md").render(rows=rows)


def write_index(out_dir: Path) -> Path:
    path = Path(out_dir) / "README.md"
    path.write_text(render_index(out_dir), encoding="utf-8")
    return path
