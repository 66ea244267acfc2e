"""The bad-input catalogue (cases.toml): each malformed grid, flag, executor option, masks file or
store gives exactly its one-line message, exit status 2, and leaves nothing behind.

``python tests/bad_inputs/test_bad_inputs.py`` regenerates docs/errors.md from cases.toml;
``test_errors_doc_matches_the_catalogue`` checks that the two agree.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
DOC = ROOT / "docs" / "errors.md"
CATALOGUE = tomllib.loads((HERE / "cases.toml").read_text(encoding="utf-8"))
CASES = CATALOGUE["case"]
AREAS = {"grid": "Grid files", "cli": "Command-line flags", "executor": "Executors", "masks": "Masks files",
         "store": "Output folders and the results store", "plugin": "Plugins"}


def grid_text(case: dict) -> str | None:
    if case.get("grid", True) is False:
        return None
    text = CATALOGUE["good_grid"]
    pairs = case.get("grid_replace", [])
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert old in text, f"{case['name']}: {old!r} is not in the good grid"
        text = text.replace(old, new)
    return text + case.get("grid_append", "")


def make_files(case: dict, root: Path) -> None:
    for name, text in case.get("files", {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name, hexdata in case.get("binary_files", {}).items():
        (root / name).write_bytes(bytes.fromhex(hexdata))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def run_case(case: dict, root: Path, capsys) -> tuple[int, str, str]:
    from benchmark.cli import main

    return main(case["argv"]), *capsys.readouterr()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    monkeypatch.chdir(tmp_path)
    for var, value in case.get("env", {}).items():
        monkeypatch.setenv(var, value)
    if case.get("setup") == "finished-run":
        (tmp_path / "good.toml").write_text(CATALOGUE["good_grid"])
        assert main(["run", "good.toml", "--out", "out", "--no-progress"]) == 0
        if case.get("corrupt_db"):
            for suffix in ("-wal", "-shm"):
                (tmp_path / f"out/results.db{suffix}").unlink(missing_ok=True)
            (tmp_path / "out/results.db").write_bytes(b"this is not sqlite" * 100)
        capsys.readouterr()
    text = grid_text(case)
    if text is not None:
        (tmp_path / "grid.toml").write_text(text)
    make_files(case, tmp_path)
    before = snapshot(tmp_path)
    rc, out, err = run_case(case, tmp_path, capsys)
    assert rc == 2, f"exit status {rc}; stderr: {err}"
    assert err == f"sparsebench: error: {case['message']}\n"
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before, "a bad input must leave nothing behind"


def test_catalogue_is_large_unique_and_documented():
    names = [c["name"] for c in CASES]
    assert len(names) >= 30 and len(set(names)) == len(names)
    for c in CASES:
        assert c["area"] in AREAS and c["message"] and "\n" not in c["message"], c["name"]


def render_doc() -> str:
    lines = [
        "# Errors: what a bad input says",
        "",
        "<!-- generated from tests/bad_inputs/cases.toml by `python tests/bad_inputs/test_bad_inputs.py`; "
        "do not edit -->",
        "",
        "Every user mistake ends `sparsebench` with **one line** on stderr — `sparsebench: error: ` followed by",
        "the problem and the fix — and **exit status 2**, before anything is written: no traceback, no",
        "output folder, no changed file.  Each line below is checked, word for word, by",
        "`tests/bad_inputs/test_bad_inputs.py` (the command runs in a folder holding the files named;",
        "`grid.toml` is the small grid at the top of `cases.toml` with the change shown).",
        "",
        "Failures *during* a run are not bad input: they are recorded per run (status `failed` with its",
        "reason — an exception, \"out of memory\", \"worker process died (exit code …)\", \"exceeded the",
        "per-run time limit of N s\" — or `diverged`) and the grid goes on; see docs/scaling.md.  An output",
        "folder that stops taking writes (disk full, read-only) stops the grid with one line and exit 2:",
        "`cannot write to output folder 'OUT' (No space left on device); free space or fix its permissions,",
        "then run the same command again to resume (finished runs are kept)`.",
        "",
    ]
    for area, title in AREAS.items():
        cases = [c for c in CASES if c["area"] == area]
        if not cases:
            continue
        lines += [f"## {title}", "", "| case | input | message |", "|---|---|---|"]
        for c in cases:
            inp = "".join(f"{k}={v} " for k, v in c.get("env", {}).items()) + "sparsebench " + " ".join(c["argv"])
            change = []
            pairs = c.get("grid_replace", [])
            change += [f"`{o!s}` → `{n!s}`" for o, n in zip(pairs[::2], pairs[1::2])]
            if c.get("grid_append"):
                change.append(f"adds `{c['grid_append'].strip()}`")
            change += [f"{k}: `{v.strip()}`" for k, v in c.get("files", {}).items()]
            change += [f"{k}: bytes `{v}`" for k, v in c.get("binary_files", {}).items()]
            if c.get("setup") == "finished-run":
                change.append("out/ holds a finished run" + (", results.db overwritten with junk"
                                                             if c.get("corrupt_db") else ""))
            detail = f"`{inp}`" + ("<br>" + "; ".join(change) if change else "")
            msg = c["message"].replace("|", "\\|")
            lines.append(f"| {c['name']} | {detail.replace(chr(10), '⏎').replace('|', chr(92) + '|')} | {msg} |")
        lines.append("")
    return "\n".join(lines)


def test_errors_doc_matches_the_catalogue():
    assert DOC.read_text(encoding="utf-8") == render_doc(), \
        "docs/errors.md is out of date: run python tests/bad_inputs/test_bad_inputs.py"


if __name__ == "__main__":
    DOC.write_text(render_doc(), encoding="utf-8")
    print(f"wrote {DOC} ({len(CASES)} cases)", file=sys.stderr)
