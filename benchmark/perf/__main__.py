"""``python -m benchmark.perf [--write docs/benchmarks.md] [--quick] [--only NAME] [--clock auto|wall|cpu]`` —
the `make bench` suite.

Each section is measured side by side in one run on this machine and rendered as Markdown; with
``--write`` the sections are assembled into docs/benchmarks.md with the machine, command, load and date.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
import time
from pathlib import Path

from benchmark.perf.timing import QUIET_LOAD, clock_name, load_average, machine, set_clock

# (name, module, function returning a Markdown section); modules are imported lazily.
SECTIONS = [
    ("epoch", "benchmark.perf.epoch", "section"),
    ("maskfb", "benchmark.perf.maskfb", "section"),
    ("graphon", "graphon.bench", "section"),
    ("workers", "benchmark.perf.workers", "section"),
    ("memory", "benchmark.perf.memory", "section"),
    ("sparse", "benchmark.perf.sparse", "section"),
    ("flops", "benchmark.perf.flops", "section"),
    ("gpu", "benchmark.perf.flops", "gpu_section"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.perf")
    p.add_argument("--write", default=None, help="write the report to this Markdown file")
    p.add_argument("--quick", action="store_true", help="few repetitions (smoke test; numbers are noisy)")
    p.add_argument("--only", default=None, help="run these sections (comma-separated): "
                   + ", ".join(s[0] for s in SECTIONS))
    p.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"),
                   help="time steps by wall clock or by the process's CPU time; auto = cpu when the load "
                        f"average is >= {QUIET_LOAD}")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= {s[0] for s in SECTIONS}:
        p.error(f"unknown section(s) {', '.join(sorted(only - {s[0] for s in SECTIONS}))}; choose from "
                + ", ".join(s[0] for s in SECTIONS))
    import torch

    load0 = load_average()
    clock = set_clock(args.clock)
    # CPU time counts the OpenMP threads' busy-waiting, which grows with contention: one thread then
    if args.threads or clock == "cpu":
        torch.set_num_threads(args.threads or 1)
    t0 = time.perf_counter()
    parts = []
    update = bool(args.write and only and Path(args.write).is_file())  # re-measure some sections in place
    for name, module, fn in SECTIONS:
        if only and name not in only:
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            parts.append(f"## {name}\n\nnot measured: {exc}\n")
            continue
        func = getattr(mod, fn, None)
        if func is None:
            parts.append(f"## {name}\n\nnot measured: {module} has no {fn}()\n")
            continue
        la = load_average()
        print(f"measuring {name} ... (load {la:.1f})", file=sys.stderr, flush=True)
        s0 = time.perf_counter()
        text = func(quick=args.quick)
        print(text)
        took = time.perf_counter() - s0
        print(f"  {name}: {took:.0f} s", file=sys.stderr, flush=True)
        stamp = (f"_Section measured {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} in {took:.0f} s; 1-minute load "
                 f"average {la:.1f} → {load_average():.1f}._\n")
        parts.append(f"<!-- section:{name} -->\n{text.rstrip()}\n\n{stamp}<!-- /section:{name} -->\n")
        if args.write and not update:
            _write_report(Path(args.write), parts, load0, t0, done=False)  # keep what is measured so far
    if update:
        # re-measure some sections of an existing report: replace just their blocks
        doc = Path(args.write).read_text(encoding="utf-8")
        for part in parts:
            name = part.split("-->", 1)[0].removeprefix("<!-- section:").strip()
            start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
            i, j = doc.find(start), doc.find(end)
            doc = doc[:i] + part.rstrip("\n") + doc[j + len(end):] if i >= 0 and j > i else doc + "\n" + part
        complete = all(f"<!-- section:{n} -->" in doc for n, _, _ in SECTIONS)
        body = doc[doc.find("<!-- section:"):] if "<!-- section:" in doc else doc
        head = ["# Benchmarks", "",
                f"Assembled from runs of the suite on {machine()} (last {dt.date.today().isoformat()}); the "
                f"sections were measured at different times — each names its time stamp, load average and clock. "
                f"A 1-minute load average above {QUIET_LOAD} means the machine was shared with other jobs: "
                "absolute times are then inflated and ratios noisier than on a quiet machine.", "", COMMAND, "",
                TARGETS]
        if not complete:
            head += [INCOMPLETE, ""]
        Path(args.write).write_text("\n".join(head) + "\n" + body, encoding="utf-8")
    elif args.write:
        _write_report(Path(args.write), parts, load0, t0, done=True)
    return 0


COMMAND = ("Command: `make bench` (`python -m benchmark.perf --write docs/benchmarks.md`; `--quick` for a smoke "
           "run; `--only epoch,memory` re-measures those sections of an existing report in place). Every figure is "
           "a ratio of two things timed side by side in one run, interleaved (rotating order) after a warm-up, "
           "median over rounds of the per-round ratio.")
TARGETS = """Targets (issue 22), each measured in the section named; a miss is explained there with its breakdown:

| figure | target | section |
|---|---|---|
| CPU: suite epoch / bare loop (LeNet-300-100, LeNet-5, ResNet-8) | ≤ 1.05 | Training epoch |
| CPU: masked / dense epoch | ≤ 1.05 | Training epoch |
| CPU: quick grid 2 workers / 1 worker | ≥ 1.8× | Grid |
| GPU: Sign-In / dense, HAM / dense, PILoT / dense (ResNet-20, bf16) | ≤ 1.10, ≤ 1.05, ≤ 1.10 | GPU check |
| GPU: masked / dense | ≤ 1.03 | GPU check |
| GPU: 8 packed runs / 1 run, throughput | ≥ 4× | GPU check |
"""
INCOMPLETE = ("**Incomplete: the suite is still running (or was stopped); the sections below are those measured "
              "so far.**")


def _write_report(path: Path, parts: list[str], load0: float, t0: float, done: bool) -> None:
    load1 = load_average()
    quiet = max(load0, load1) < QUIET_LOAD
    head = ["# Benchmarks", "",
            f"Measured {dt.date.today().isoformat()} on {machine()}; the suite took "
            f"{time.perf_counter() - t0:.0f} s{'' if done else ' so far'}. 1-minute load average {load0:.1f} at "
            f"the start, {load1:.1f} at the end{'' if quiet else ' — the machine was shared with other jobs, so absolute times are inflated and the ratios are noisier than on a quiet machine'}.",
            "",
            COMMAND + f" Clock of the step timings in this run: {clock_name()}.", "", TARGETS]
    if not done:
        head += [INCOMPLETE, ""]
    path.write_text("\n".join(head) + "\n" + "\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
