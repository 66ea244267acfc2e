"""The ``sparsebench`` command line.

Every user error (bad grid, flag, plugin, file) ends with one line on stderr naming the problem and
the fix, exit status 2, no traceback and nothing written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from pruners.registry import ConfigError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage dumps."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message}; see '{self.prog} --help'")


def command(name: str):
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn
    return deco


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def build_parser() -> Parser:
    p = Parser(prog="sparsebench", description="Benchmark suite for sparse training and pruning.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    r = sub.add_parser("run", help="run a grid file (resumes: finished runs are skipped)")
    r.add_argument("grid", help="TOML grid file, e.g. grids/quick.toml")
    r.add_argument("--out", default="results", help="output folder (run folders + results.db)")
    r.add_argument("--workers", type=positive_int, default=1, help="parallel runs on this machine")
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    r.add_argument("--executor", default="local", help="where runs execute: local (default)")
    r.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    r.add_argument("--no-progress", action="store_true", help="no progress bar (live lines only)")
    r.add_argument("--dry-run", action="store_true", help="validate and list the runs, run nothing")

    ls = sub.add_parser("list", help="list registered tasks, pruners, reparams or allocations")
    ls.add_argument("what", choices=["tasks", "pruners", "reparams", "allocations"])

    t = sub.add_parser("table", help="print the aggregated results table (mean ± std over seeds)")
    t.add_argument("--out", default="results", help="output folder of the runs")
    t.add_argument("--format", default="plain", choices=["plain", "md", "csv", "latex"])
    t.add_argument("--task", default=None, help="only this task")

    m = sub.add_parser("masks", help="print the sparsity report of a masks file (masks.pt of a run)")
    m.add_argument("file", help="a masks.pt file")

    s = sub.add_parser("store", help="maintain the results store")
    s.add_argument("action", choices=["rebuild", "check"])
    s.add_argument("out", help="output folder")
    return p


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.driver import run_grid
    from benchmark.executors import EXECUTORS
    from benchmark.grid import load_grid
    from benchmark.runfolder import ensure_writable

    grid = load_grid(args.grid)
    if args.dry_run:
        for spec in grid.specs:
            print(f"{spec.run_id}  {spec.label()}")
        print(f"{len(grid.specs)} runs")
        return 0
    device = _check_device(args.device)
    executor_cls = EXECUTORS.get(args.executor)
    _check_data(grid.specs)
    ensure_writable(Path(args.out))
    executor = executor_cls(workers=args.workers, device=device)
    report = run_grid(grid.specs, args.out, executor, grid=grid.name, retry_failed=args.retry_failed,
                      progress=not args.no_progress)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status.items())) or "nothing new"
    print(f"{grid.name}: {report.total} runs, {report.skipped} already done, ran {report.ran} ({counts}); "
          f"results in {args.out}")
    return 0


def _check_data(specs) -> None:
    """Load each task's dataset once before anything runs: a missing dataset is a ConfigError
    (one line saying how to get it), not a grid of failed runs."""
    from benchmark.runner import load_task_data
    from benchmark.tasks import get_task

    for task in sorted({s.task for s in specs}):
        load_task_data(get_task(task))


def _check_device(name: str) -> str:
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return str(dev)


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.tasks import TASKS
    from pruners import ALLOCATIONS, PRUNERS
    from reparam import REPARAMS

    if args.what == "tasks":
        rows = [(n, t.dataset, t.model, t.recipe.epochs, t.recipe.optimizer, t.source) for n, t in TASKS.items()]
        print(tabulate(rows, headers=["task", "dataset", "model", "epochs", "optimizer", "source"]))
    elif args.what == "pruners":
        rows = [(n, c.family, c.description, PRUNERS.origin(n)) for n, c in PRUNERS.items()]
        print(tabulate(rows, headers=["pruner", "family", "description", "origin"]))
    elif args.what == "reparams":
        rows = [(n, c.description, REPARAMS.origin(n)) for n, c in REPARAMS.items()]
        print(tabulate(rows, headers=["reparam", "description", "origin"]))
    else:
        rows = [(n, (c.__doc__ or "").strip().splitlines()[0]) for n, c in ALLOCATIONS.items()]
        print(tabulate(rows, headers=["allocation", "description"]))
    return 0


@command("table")
def cmd_table(args: argparse.Namespace) -> int:
    from benchmark.store import results
    from leaderboard.table import aggregate, format_table

    df = results(args.out)
    if args.task is not None:
        if args.task not in set(df["task"]):
            from pruners.registry import did_you_mean
            raise ConfigError(f"no results for task {args.task!r} in {args.out}"
                              f"{did_you_mean(args.task, sorted(set(df['task'])))}")
        df = df[df["task"] == args.task]
    if df.empty:
        print(f"no results yet in {args.out}")
        return 0
    print(format_table(aggregate(df), args.format))
    return 0


@command("masks")
def cmd_masks(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from pruners import Masks

    masks = Masks.load(args.file)
    rows = [(n, "×".join(map(str, masks[n].shape)), k, t, f"{100 * (1 - k / t):.2f}" if t else "—")
            for n, (k, t) in masks.counts().items()]
    print(tabulate(rows, headers=["layer", "shape", "kept", "total", "sparsity (%)"]))
    print(f"overall sparsity {100 * masks.sparsity():.3f} % ({masks.kept()} of {masks.total()} weights kept); "
          f"collapsed layers: {', '.join(masks.collapsed_layers()) or 'none'}")
    return 0


@command("store")
def cmd_store(args: argparse.Namespace) -> int:
    from benchmark.store import Store

    out = Path(args.out)
    if not out.is_dir():
        raise ConfigError(f"output folder {str(out)!r} does not exist; pass the --out folder of a grid run")
    if args.action == "rebuild":
        n = Store.__new__(Store)
        n.out, n.path = out, out / "results.db"
        print(f"rebuilt {n.path} with {n.rebuild()} runs from {out / 'runs'}")
        return 0
    problems = Store(out).check()
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"sparsebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparsebench: interrupted; finished runs are kept, run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
