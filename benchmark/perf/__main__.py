"""``python -m benchmark.perf [--write docs/benchmarks.md] [--quick] [--only NAME]`` — the `make bench` suite.

Each section is measured side by side in one run on this machine and rendered as Markdown; with
``--write`` the sections are assembled into docs/benchmarks.md with the machine, command and date.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
from pathlib import Path

from benchmark.perf.timing import machine

# (name, module, function returning a Markdown section); modules are imported lazily.
SECTIONS = [
    ("step", "benchmark.perf.step", "section"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.perf")
    p.add_argument("--write", default=None, help="write the report to this Markdown file")
    p.add_argument("--quick", action="store_true", help="few repetitions (smoke test; numbers are noisy)")
    p.add_argument("--only", default=None, help="run one section: " + ", ".join(s[0] for s in SECTIONS))
    args = p.parse_args(argv)
    parts = []
    for name, module, fn in SECTIONS:
        if args.only and name != args.only:
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            parts.append(f"## {name}\n\nnot measured: {exc}\n")
            continue
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        text = getattr(mod, fn)(quick=args.quick)
        print(text)
        parts.append(text)
    if args.write:
        head = ["# Benchmarks", "",
                f"Measured {dt.date.today().isoformat()} on {machine()}.", "",
                "Command: `make bench` (`python -m benchmark.perf --write docs/benchmarks.md`). Every figure is a "
                "ratio of two things timed side by side in one run, interleaved, after a warm-up.", ""]
        Path(args.write).write_text("\n".join(head) + "\n" + "\n".join(parts), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
