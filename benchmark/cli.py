"""The ``sparsebench`` command line.

Every user error (bad grid, flag, plugin, file) ends with one line on stderr naming the problem and
the fix, exit status 2, no traceback and nothing written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from pruners.registry import ConfigError, did_you_mean

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless its help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.option_strings and "default" not in text and default not in (None, False, [], "")
                and default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage dumps, and defaults in ``--help``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message}; see '{self.prog} --help'")


def command(name: str):
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn
    return deco


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def build_parser() -> Parser:
    from importlib.metadata import PackageNotFoundError, version

    p = Parser(prog="sparsebench", description="Benchmark suite for sparse training and pruning.")
    try:
        installed = version("sparsebench")
    except PackageNotFoundError:   # run from a checkout that was never installed
        installed = "unknown (not installed; run 'pip install -e .')"
    p.add_argument("--version", action="version", version=f"sparsebench {installed}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    r = sub.add_parser("run", help="run a grid file (resumes: finished runs are skipped)")
    r.add_argument("grid", help="TOML grid file, e.g. grids/quick.toml")
    r.add_argument("--out", default="results", help="output folder (run folders + results.db)")
    r.add_argument("--workers", type=positive_int, default=None,
                   help="parallel runs on this machine (--executor local; default 1)")
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    r.add_argument("--compile", action="store_true", help="torch.compile each run's model (CUDA only; on the "
                   "CPU runs stay eager and say so; recorded in versions, not in the run id)")
    r.add_argument("--executor", default="local", help="where runs execute: local (default), ray, slurm "
                   "(docs/scaling.md)")
    r.add_argument("--run-timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="per-run time limit (overrides the grid's run_timeout; default 7 days); a run past it is "
                   "recorded failed and the others go on")
    r.add_argument("--address", default=None, help="Ray cluster address (--executor ray; default: start a "
                   "local Ray)")
    r.add_argument("--partition", default=None, help="Slurm partition (--executor slurm)")
    r.add_argument("--time", default=None, help="Slurm time limit per job: minutes or [D-]H:MM:SS "
                   "(--executor slurm; default 60 minutes)")
    r.add_argument("--gpus-per-run", type=non_negative_int, default=None,
                   help="GPUs per run (--executor slurm; default: the grid's [resources])")
    r.add_argument("--slurm-cluster", default=None, choices=["slurm", "local"],
                   help="'local' runs the job arrays as local processes through submitit (--executor slurm)")
    r.add_argument("--detach", action="store_true", default=None,
                   help="submit and return; collect later with 'sparsebench collect OUT' (--executor slurm)")
    r.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    r.add_argument("--no-progress", action="store_true", help="no progress bar (live lines only)")
    r.add_argument("--dry-run", action="store_true", help="validate and list the runs, run nothing")
    r.add_argument("--task", action="append", default=[], metavar="TASK",
                   help="run only this task's part of the grid (repeatable); the rest stays pending")
    r.add_argument("--plugin", action="append", default=[], metavar="TARGET",
                   help="load pruners from a .py file or package.module first (repeatable; docs/plugins.md)")

    ls = sub.add_parser("list", help="list registered tasks, pruners, schedules, reparams or allocations")
    ls.add_argument("what", choices=["tasks", "pruners", "schedules", "reparams", "allocations"])

    sh = sub.add_parser("show", help="everything about one task, pruner, schedule, reparam or allocation (the "
                        "full text that 'list' wraps)")
    sh.add_argument("what", choices=["task", "pruner", "schedule", "reparam", "allocation"])
    sh.add_argument("name", help="its registered name (see 'sparsebench list')")

    t = sub.add_parser("table", help="print the aggregated results table (mean ± std over seeds)")
    t.add_argument("--out", default="results", help="output folder of the runs")
    t.add_argument("--format", default="plain", choices=["plain", "md", "csv", "latex"])
    t.add_argument("--task", default=None, help="only this task")
    t.add_argument("--gains", action="store_true",
                   help="paired gain of each reparam over the same method with plain weights (95 %% t-interval over seeds)")

    lb = sub.add_parser("leaderboard", help="build or serve the static leaderboard site")
    lsub = lb.add_subparsers(dest="action", required=True, parser_class=Parser)
    lbb = lsub.add_parser("build", help="build the site from a results folder")
    lbb.add_argument("--out", default="results", help="output folder of the runs")
    lbb.add_argument("--site", default="site", help="folder of the generated site")
    lbb.add_argument("--published", default=None, help=".csv/.json of published numbers: task,method,sparsity,top1,source")
    lbs = lsub.add_parser("serve", help="serve a built site on localhost until Ctrl-C")
    lbs.add_argument("--site", default="site", help="folder of the generated site")
    lbs.add_argument("--port", type=int, default=8000, help="port (localhost only)")

    m = sub.add_parser("masks", help="print the sparsity report of a masks file (masks.pt of a run)")
    m.add_argument("file", help="a masks.pt file")

    s = sub.add_parser("store", help="maintain the results store")
    s.add_argument("action", choices=["rebuild", "check", "migrate"],
                   help="rebuild: recreate results.db from the run folders; check: do folders and rows agree; "
                        "migrate: rewrite run folders of an older spec format (docs/results-schema.md)")
    s.add_argument("out", help="output folder")
    s.add_argument("--repair", action="store_true",
                   help="check: move the folders of runs whose files fail the check to OUT/broken/ (never "
                        "deleted) and drop their rows, so the next 'sparsebench run' runs them again")

    st = sub.add_parser("status", help="done / running / interrupted / failed / diverged / pending runs")
    st.add_argument("out", help="output folder")
    st.add_argument("--grid", default=None, help="the grid file (needed to count pending runs)")
    st.add_argument("--stale-after", type=positive_float, default=None, metavar="SECONDS",
                    help="an unfinished run with no activity for this long counts as interrupted (default 180)")

    co = sub.add_parser("collect", help="ingest finished runs of detached Slurm jobs into the store")
    co.add_argument("out", help="output folder")
    _add_plugin_parsers(sub)
    _add_graphon_parsers(sub)
    _add_reproduce_parser(sub)
    return p


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.driver import run_grid
    from benchmark.grid import load_grid
    from benchmark.runfolder import ensure_writable

    executor = None
    if not args.dry_run:
        # The executor first: a pool's workers start importing (in the background) while the grid is
        # read and its datasets are loaded here.  Nothing is written before _check_data has passed.
        if args.compile:   # before the executor starts its workers: they inherit the environment
            from benchmark.runner import COMPILE_ENV

            os.environ[COMPILE_ENV] = "1"
        executor = _build_executor(args, _check_device(args.device))
    grid = _grid_with_plugins(args.grid, args.plugin) if args.plugin else load_grid(args.grid)
    if args.task:
        tasks = {s.task for s in grid.specs}
        for t in args.task:
            if t not in tasks:
                raise ConfigError(f"--task {t!r} is not a task of {args.grid}{did_you_mean(t, sorted(tasks))}; "
                                  f"its tasks: {', '.join(sorted(tasks))}")
        grid = replace(grid, specs=[s for s in grid.specs if s.task in args.task])
    if executor is not None and args.run_timeout is None and grid.run_timeout is not None:
        executor.limit_runs(grid.run_timeout)
    if args.dry_run:
        for spec in grid.specs:
            print(f"{spec.run_id}  {spec.label()}")
        print(f"{len(grid.specs)} runs")
        return 0
    from benchmark.runner import checkpoint_every

    checkpoint_every()  # a bad $SPARSEBENCH_CHECKPOINT_EVERY is refused before anything is written
    _check_data(grid.specs)
    ensure_writable(Path(args.out))
    report = run_grid(grid.specs, args.out, executor, grid=grid.name, retry_failed=args.retry_failed,
                      progress=not args.no_progress, resources=grid.resources)
    if report.detached:
        print(f"{grid.name}: {report.total} runs, {report.skipped} already done, submitted {report.submitted} "
              f"(job ids in {Path(args.out) / 'slurm' / 'jobs.jsonl'}); run 'sparsebench collect {args.out}' "
              "when they have finished")
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status.items())) or "nothing new"
    shared = f", {report.elsewhere} finished by another driver" if report.elsewhere else ""
    print(f"{grid.name}: {report.total} runs, {report.skipped} already done{shared}, ran {report.ran} ({counts}); "
          f"results in {args.out}")
    return 0


#: ``sparsebench run`` options that belong to one executor (argparse dest → flag).
EXECUTOR_FLAGS = {"workers": "--workers", "address": "--address", "partition": "--partition", "time": "--time",
                  "gpus_per_run": "--gpus-per-run", "slurm_cluster": "--slurm-cluster", "detach": "--detach"}


def _build_executor(args: argparse.Namespace, device: str):
    """The executor named by --executor with its options; an option of another executor is refused."""
    from benchmark.executors import EXECUTORS

    if args.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {args.executor!r}{did_you_mean(args.executor, EXECUTORS.names())}; "
                          f"use --executor {' / '.join(EXECUTORS.names())}")
    cls = EXECUTORS.get(args.executor)
    opts = {}
    for dest, flag in EXECUTOR_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if dest not in cls.cli_options:
            owners = [n for n, c in EXECUTORS.items() if dest in c.cli_options]
            raise ConfigError(f"{flag} only applies to --executor {' or '.join(owners)}; add --executor "
                              f"{owners[0]} or drop {flag}")
        opts[dest] = value
    return cls(device=device, run_timeout=args.run_timeout, **opts)


def _check_data(specs) -> None:
    """Load each task's dataset once before anything runs: a missing dataset is a ConfigError
    (one line saying how to get it), not a grid of failed runs."""
    from benchmark.tasks import cached_data

    for dataset, args in sorted({(s.dataset, json.dumps(dict(s.dataset_args), sort_keys=True)) for s in specs}):
        cached_data(dataset, json.loads(args))


def _check_device(name: str) -> str:
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return str(dev)


WRAP = 60   # characters of a wrapped text column in 'sparsebench list'


def _first_paragraph(doc: str | None) -> str:
    """The docstring's first paragraph on one line (``list`` wraps it; ``show`` prints it whole)."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def _registries() -> dict:
    from benchmark.tasks import TASKS
    from pruners import ALLOCATIONS, PRUNERS, SCHEDULES
    from reparam import REPARAMS

    return {"task": TASKS, "pruner": PRUNERS, "schedule": SCHEDULES, "reparam": REPARAMS, "allocation": ALLOCATIONS}


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.spec import field_defaults

    reg = _registries()[args.what.rstrip("s")]
    if args.what == "tasks":
        rows = [(n, t.dataset, t.model, t.recipe.epochs, t.recipe.optimizer, t.source) for n, t in reg.items()]
        headers = ["task", "dataset", "model", "epochs", "optimizer", "source"]
    elif args.what == "pruners":
        rows = [(n, c.family, "" if c.schedule_preset == "at_init" else f"{c.score_name} × {c.schedule_preset}",
                 c.description, reg.origin(n)) for n, c in reg.items()]
        headers = ["pruner", "family", "preset of", "description", "origin"]
    elif args.what == "schedules":
        rows = [(n, ", ".join(f"{k}={v!r}" for k, v in field_defaults(c).items()), c.description,
                 reg.origin(n)) for n, c in reg.items()]
        headers = ["schedule", "hyperparameters (defaults)", "description", "origin"]
    elif args.what == "reparams":
        rows = [(n, c.kind or "-", c.description, reg.origin(n)) for n, c in reg.items()]
        headers = ["reparam", "kind (stacks: one of each)", "description", "origin"]
    else:
        rows = [(n, _first_paragraph(c.__doc__)) for n, c in reg.items()]
        headers = ["allocation", "description"]
    widths = [WRAP if h in ("source", "description", "hyperparameters (defaults)") else None for h in headers]
    print(tabulate(rows, headers=headers, maxcolwidths=widths))
    print(f"(full text: sparsebench show {args.what.rstrip('s')} NAME)")
    return 0


@command("show")
def cmd_show(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmark.spec import field_defaults

    reg = _registries()[args.what]
    obj = reg.get(args.name)
    rows: list[tuple[str, object]] = [(args.what, args.name)]
    if args.what == "task":
        rows += [("dataset", obj.dataset), ("dataset_args", dict(obj.dataset_args)), ("model", obj.model),
                 ("model_args", dict(obj.model_args)), ("recipe", dataclasses.asdict(obj.recipe)),
                 ("source", obj.source)]
    else:
        rows.append(("origin", reg.origin(args.name)))
        for attr in ("family", "kind", "description", "paper", "url", "version", "author"):
            value = getattr(obj, attr, "")
            if value:
                rows.append((attr, value))
        doc = _first_paragraph(obj.__doc__)
        if doc and doc != getattr(obj, "description", ""):
            rows.append(("about", doc))
        rows.append(("hyperparameters (defaults)", field_defaults(obj) or "none"))
    for key, value in rows:
        print(f"{key}: {value}")
    return 0


@command("table")
def cmd_table(args: argparse.Namespace) -> int:
    from benchmark.store import results
    from leaderboard.table import aggregate, format_table, paired_gains

    df = results(args.out)
    _say_left_out(df, args.out)
    if args.task is not None:
        if args.task not in set(df["task"]):
            raise ConfigError(f"no results for task {args.task!r} in {args.out}"
                              f"{did_you_mean(args.task, sorted(set(df['task'])))}")
        df = df[df["task"] == args.task]
    if df.empty:
        print(f"no results yet in {args.out}")
        return 0
    print(format_table(paired_gains(df), args.format, gains=True) if args.gains
          else format_table(aggregate(df), args.format))
    return 0


def _say_left_out(df, out) -> None:
    from benchmark.store import left_out_note

    note = left_out_note(df, out)
    if note:
        print(f"sparsebench: {note}", file=sys.stderr)


@command("leaderboard")
def cmd_leaderboard(args: argparse.Namespace) -> int:

    from leaderboard.site import build_site, read_published, serve

    if args.action == "serve":
        serve(args.site, args.port)
        return 0
    from benchmark.store import results
    from pruners import PRUNERS

    from benchmark.runfolder import read_metrics, run_dir

    df = results(args.out)
    _say_left_out(df, args.out)
    curves = {rid: m for rid in df["run_id"] if (m := read_metrics(run_dir(Path(args.out), rid))) is not None}
    from pruners.plugins import pruner_metadata

    info = {n: pruner_metadata(n) for n in PRUNERS.names()}
    published = read_published(args.published) if args.published else None
    index = build_site(df, args.site, published=published, curves=curves, pruner_info=info)
    print(f"leaderboard: {index}  (browse it, or: sparsebench leaderboard serve --site {args.site})")
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

    from benchmark.runfolder import is_output_error, output_error

    out = _output_folder(args.out)
    if args.repair and args.action != "check":
        raise ConfigError("--repair only applies to 'sparsebench store check'; drop it or use 'store check --repair'")
    if args.action == "rebuild":
        n = Store.__new__(Store)
        n.out, n.path = out, out / "results.db"
        try:
            rows = n.rebuild()
        except Exception as exc:
            if is_output_error(exc, out):
                raise output_error(out, exc) from None
            raise
        print(f"rebuilt {n.path} with {rows} runs from {out / 'runs'}")
        return 0
    if args.action == "migrate":
        from benchmark.migrate import migrate

        c = migrate(out)
        print(f"migrated {c['migrated']} run folder(s) of spec format 1 in {out}; {c['already']} already had a "
              f"folder under the new id (old copy removed); {c['unfinished']} unfinished left in place (rerun "
              "their grid)")
        return 0
    store = Store(out)
    problems = store.check()
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)")
    if args.repair and problems:
        moved = store.repair()
        print(f"moved {len(moved)} broken run folder(s) to {out / 'broken'} and rebuilt the store; run their "
              "grid again to re-run them")
        return 0 if not store.check() else 1
    return 1 if problems else 0


def _output_folder(path: str) -> Path:
    out = Path(path)
    if not out.is_dir():
        raise ConfigError(f"output folder {str(out)!r} does not exist; pass the --out folder of a grid run")
    if not (out / "runs").is_dir() and not (out / "results.db").exists():
        raise ConfigError(f"{str(out)!r} is not a sparsebench output folder (no runs/ or results.db); pass the "
                          "--out folder of a grid run")
    return out


@command("status")
def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.status import STALE_AFTER_S, format_status, run_statuses

    grid = None
    if args.grid is not None:
        from benchmark.grid import load_grid

        grid = load_grid(args.grid)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output folder {str(out)!r} is not a folder; pass the --out folder of a grid run")
    else:
        out = _output_folder(args.out)
    statuses = run_statuses(out, grid.specs if grid else None, grid.name if grid else "",
                            args.stale_after or STALE_AFTER_S)
    print(format_status(statuses) if statuses else f"no runs under {out}")
    return 0


@command("collect")
def cmd_collect(args: argparse.Namespace) -> int:
    from benchmark.executors.slurm import collect
    from benchmark.runfolder import is_output_error, output_error

    out = _output_folder(args.out)
    try:
        counts = collect(out)
    except Exception as exc:
        if is_output_error(exc, out):
            raise output_error(out, exc) from None
        raise
    print(f"collected {out}: {counts['ingested']} finished run(s) added to the store, {counts['failed']} "
          f"job(s) recorded as failed, {counts['waiting']} still queued or running")
    return 0


# ------------------------------------------------------------------------------------------------
# plugins: `run --plugin`, `plugin check`, `submit` (docs/plugins.md)
def _add_plugin_parsers(sub) -> None:
    pl = sub.add_parser("plugin", help="work with pruner plugins: 'plugin check TARGET' runs the conformance kit")
    psub = pl.add_subparsers(dest="plugin_command", required=True, parser_class=Parser)
    c = psub.add_parser("check", help="run the conformance kit (pytest) on a plugin's pruners, schedules and "
                        "reparams (or on --pruner / --schedule / --reparam NAME)")
    c.add_argument("target", nargs="*", help="a .py file or package.module registering pruners, schedules or reparams")
    c.add_argument("--pruner", action="append", default=[], help="check only this pruner (built-ins too)")
    c.add_argument("--schedule", action="append", default=[], help="check this schedule (built-ins too)")
    c.add_argument("--reparam", action="append", default=[], help="check this reparam (built-ins too)")
    _add_kit_arguments(c)
    c.add_argument("--format", default="plain", choices=["plain", "github", "pipe"], help="table format")

    sm = sub.add_parser("submit", help="check a plugin, run the standard grid for it, rank it")
    sm.add_argument("target", help="a .py file or package.module registering the pruner(s)")
    sm.add_argument("--grid", default=None, help="the grid the submission runs (tasks, sparsities, seeds, "
                    "baselines; default: grids/standard.toml of the installed sparsebench, from any folder); "
                    "the plugin's pruners are added to its [[pruners]]")
    sm.add_argument("--out", default="results/standard", help="output folder shared by all submissions")
    sm.add_argument("--pruner", action="append", default=[], help="submit only this pruner of the plugin")
    sm.add_argument("--allocation", action="append", default=[],
                    help="layer allocation(s) of the submitted pruner in the grid (default: global)")
    sm.add_argument("--workers", type=positive_int, default=1, help="parallel runs on this machine")
    sm.add_argument("--device", default="cpu", help="torch device of the grid's runs")
    sm.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_kit_arguments(sm)


def _add_kit_arguments(p) -> None:
    p.add_argument("--sparsity", type=float, default=0.8, help="target sparsity of the kit's checks")
    p.add_argument("--time-budget", type=float, default=60.0, help="seconds allowed per tiny model")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU check even when CUDA is present")


def _kit_config(args: argparse.Namespace):
    from pruners.conformance import KitConfig

    if not 0.0 < args.sparsity < 1.0:
        raise ConfigError(f"--sparsity {args.sparsity} is outside (0, 1); use e.g. 0.8")
    if not args.time_budget > 0:
        raise ConfigError(f"--time-budget {args.time_budget} must be positive; use e.g. 60")
    return KitConfig(sparsity=args.sparsity, time_budget_s=args.time_budget, gpu=not args.no_gpu)


def _grid_with_plugins(path: str, targets: list[str], extra_pruners: list[dict] | None = None):
    """Load the plugins, then the grid (plus ``extra_pruners`` entries), then pre-flight every plugin
    pruner the grid uses with the conformance kit on the tiny MLP, so a broken plugin stops the grid
    before anything is written."""
    from benchmark.grid import expand_grid, load_grid, tomllib
    from pruners import plugins
    from pruners.conformance import KitConfig, Target
    from pruners.testing import first_failure, run_checks

    loaded = plugins.load_plugins(targets)
    try:
        if extra_pruners:
            load_grid(path)  # the file and its own entries are valid
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            names = {e.get("name") for e in raw.get("pruners", []) if isinstance(e, dict)}
            raw["pruners"] = list(raw.get("pruners", [])) + [e for e in extra_pruners if e["name"] not in names]
            grid = expand_grid(raw, where=Path(path).name)
            grid.source = str(path)
        else:
            grid = load_grid(path)
    except ConfigError as exc:
        raise plugins.annotate(exc) from None
    ours = {name: p for p, name in plugins.iter_plugin_pruners(loaded)}
    checked = {}   # each plugin pruner with the hyperparameters the grid gives it -> its plugin
    for spec in grid.specs:
        if spec.pruner in ours:
            checked.setdefault(Target.of(spec.pruner, dict(spec.pruner_args)), ours[spec.pruner])
    if checked:
        _, rows = run_checks(list(checked), KitConfig(models=("mlp",), allocations=("global",), gpu=False))
        failure = first_failure(rows)
        if failure:
            failed = next(r[0] for r in rows if r[2] == "fail")
            label = next(p.label for t, p in checked.items() if t.id == failed)
            raise ConfigError(f"plugin {label!r}: {failure}; the grid was not started (see "
                              f"'sparsebench plugin check {label}')")
    return grid


@command("plugin")
def cmd_plugin(args: argparse.Namespace) -> int:
    from pruners import PRUNERS, SCHEDULES, plugins
    from pruners.conformance import Target
    from pruners.testing import run_checks, format_rows
    from reparam import REPARAMS

    cfg = _kit_config(args)
    loaded = plugins.load_plugins(args.target)
    names = [n for p in loaded for n in p.pruners] + [f"schedule:{n}" for p in loaded for n in p.schedules] + \
        [f"reparam:{n}" for p in loaded for n in p.reparams]
    asked = args.pruner + [f"schedule:{n}" for n in args.schedule] + [f"reparam:{n}" for n in args.reparam]
    if asked:
        for n in args.pruner:
            PRUNERS.get(n)
        for n in args.schedule:
            SCHEDULES.get(n)
        for n in args.reparam:
            REPARAMS.get(n)
        names = asked
    if not names:
        raise ConfigError("plugin check needs a TARGET (a .py file or package.module) or --pruner / --schedule / "
                          "--reparam NAME")
    targets = [Target.of(n) for n in names]
    code, rows = run_checks(targets, cfg)
    print(format_rows(rows, args.format))
    failed = sorted({t for t, _, status, _ in rows if status == "fail"}, key=[x.id for x in targets].index)
    print(f"{len(targets) - len(failed)} of {len(targets)} target(s) pass the conformance kit (pytest exit {code})"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed or code not in (0,) else 0


def standard_grid() -> Path:
    """grids/standard.toml of the installed sparsebench, so that ``sparsebench submit`` works from a plugin's
    own folder: beside the package (a repository checkout, ``pip install -e .``) or, for a wheel, in
    ``<prefix>/share/sparsebench/grids`` (pyproject's data-files)."""
    import sysconfig

    candidates = [Path(__file__).resolve().parents[1] / "grids" / "standard.toml",
                  Path(sysconfig.get_path("data")) / "share" / "sparsebench" / "grids" / "standard.toml"]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"the standard grid is not installed ({' nor '.join(map(str, candidates))}); reinstall "
                      "sparsebench (pip install .) or pass --grid FILE")


@command("submit")
def cmd_submit(args: argparse.Namespace) -> int:
    from benchmark.driver import run_grid
    from benchmark.executors import EXECUTORS
    from benchmark.runfolder import ensure_writable
    from pruners import plugins
    from pruners.conformance import Target
    from pruners.testing import first_failure, run_checks

    cfg = _kit_config(args)
    (plugin,) = plugins.load_plugins([args.target])
    names = plugin.pruners
    if args.pruner:
        unknown = [n for n in args.pruner if n not in names]
        if unknown:
            raise ConfigError(f"plugin {plugin.label!r} does not register pruner {unknown[0]!r}; it registers "
                              f"{', '.join(names) or 'no pruner'}")
        names = list(args.pruner)
    if not names:
        raise ConfigError(f"plugin {plugin.label!r} registers no pruner to submit; decorate a Pruner subclass "
                          "with @register_pruner(\"name\")")
    t0 = time.perf_counter()
    _, rows = run_checks([Target.of(n) for n in names], cfg)
    if first_failure(rows):
        raise ConfigError(f"plugin {plugin.label!r}: {first_failure(rows)}; nothing was run (see "
                          f"'sparsebench plugin check {plugin.label}')")
    print(f"conformance kit: {', '.join(names)} pass ({time.perf_counter() - t0:.1f}s)")
    allocations = args.allocation or ["global"]
    entries = [{"name": n, "allocation": allocations} for n in names]
    grid = _grid_with_plugins(args.grid or standard_grid(), [args.target], extra_pruners=entries)
    device = _check_device(args.device)
    _check_data(grid.specs)
    ensure_writable(Path(args.out))
    from benchmark.runfolder import read_result, run_dir

    todo = [sp for sp in grid.specs if read_result(run_dir(Path(args.out), sp.run_id)) is None]
    base = sum(sp.pruner not in names for sp in todo)
    print(f"{grid.name}: {len(grid.specs)} runs, {len(todo)} not yet in {args.out}: {len(todo) - base} of the "
          f"submission" + (f" and {base} baseline runs (a new --out runs every baseline once; later submissions "
                           f"to it reuse them)" if base else ", the baselines are done"), flush=True)
    executor = EXECUTORS.get("local")(workers=args.workers, device=device)
    report = run_grid(grid.specs, args.out, executor, grid=grid.name, progress=not args.no_progress)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status.items())) or "nothing new"
    shared = f", {report.elsewhere} finished by another driver" if report.elsewhere else ""
    print(f"{grid.name}: {report.total} runs, {report.skipped} already done{shared}, ran {report.ran} ({counts}); "
          f"results in {args.out}")
    _print_ranking(Path(args.out), grid, names)
    return 0


def _print_ranking(out: Path, grid, names: list[str]) -> None:
    from benchmark.store import results
    from leaderboard.table import aggregate, format_table
    from pruners.plugins import pruner_metadata

    df = results(out)
    df = df[df["task"].isin({s.task for s in grid.specs}) & df["pruner"].isin({s.pruner for s in grid.specs})]
    if df.empty:
        return
    print(format_table(aggregate(df), "plain"))
    for name in names:
        m = pruner_metadata(name)
        print(f"submitted {name} {m['version'] or '(no version)'} by {m['author'] or '(no author)'}: "
              f"{m['description'] or '(no description)'} {m['url']}".rstrip())


# ------------------------------------------------------------------------------------------------
# graphon: `graphon estimate`, `graphon sweep`, `graphon ntk` (docs/graphon.md, benchmark/analysis.py)
def _add_graphon_parsers(sub) -> None:
    g = sub.add_parser("graphon", help="graphon analysis of masks: estimate a run's graphons, convergence "
                       "sweep over widths, Graphon NTK spectra (docs/graphon.md)")
    gsub = g.add_subparsers(dest="graphon_command", required=True, parser_class=Parser)

    e = gsub.add_parser("estimate", help="per-layer graphon estimates of a run folder or masks.pt: table + heatmaps")
    e.add_argument("path", metavar="RUN_OR_MASKFILE", help="a run folder (runs/<id>) or its masks.pt")
    e.add_argument("--K", type=positive_int, default=None, help="cells per side (default: fit each layer, "
                   "min(64, side) on each side; an explicit K must be <= every layer side)")
    e.add_argument("--method", default="sas", choices=["sas", "sas_tv", "usvt"],
                   help="estimator: sas (the paper's), sas_tv (+ TV denoising), usvt")
    e.add_argument("--out", default=None, help="output folder (default: <run folder>/graphon)")
    e.add_argument("--ntk", action="store_true", help="also the Graphon NTK spectrum on the task's fixed batch "
                   "(first --samples test samples; plain MLPs only)")
    e.add_argument("--task", default=None, help="task of the fixed NTK batch (default: the run's spec.json)")
    e.add_argument("--samples", type=positive_int, default=256,
                   help="NTK batch: the first N test samples, the per-run summary's fixed batch (default 256)")
    e.add_argument("--per-pixel-input", action="store_true", help="NTK input graphon per input feature (the "
                   "paper's), not min(K, d) cells of adjacent features")

    def common(x, pruner_default: str) -> None:
        x.add_argument("--task", default="fmnist-lenet300",
                       help="task whose dataset gives the input size and data batches (default fmnist-lenet300)")
        x.add_argument("--pruner", action="append", default=None, metavar="NAME[,NAME...]",
                       help=f"pruner(s) at initialisation, comma-separated or repeated (default {pruner_default})")
        x.add_argument("--allocation", default="global", help="layer allocation (default global; e.g. erk)")
        x.add_argument("--pruner-arg", action="append", default=[], metavar="PRUNER.KEY=VALUE",
                       help="a pruner hyperparameter, e.g. synflow.iterations=20 (repeatable)")
        x.add_argument("--depth", type=positive_int, default=4, help="hidden layers of the MLP (default 4)")
        x.add_argument("--K", type=positive_int, default=64, help="cells per side (default 64)")
        x.add_argument("--trials", type=positive_int, default=None, help="networks per setting")
        x.add_argument("--seed", type=int, default=0, help="first seed (trial t uses seed + t)")

    s = gsub.add_parser("sweep", help="convergence of pruned MLPs' hidden->hidden graphons across widths")
    common(s, "random")
    s.add_argument("--sparsity", type=float, default=0.8, help="target sparsity (default 0.8)")
    s.add_argument("--widths", default="100,500,1000,2000", help="strictly increasing widths, comma-separated")
    s.add_argument("--method", default="sas", choices=["sas", "sas_tv", "usvt"], help="estimator (default sas)")
    s.add_argument("--no-bias", action="store_true", help="bias-free MLPs (default: with biases)")
    s.add_argument("--out", default="graphon-sweep", help="output folder (default graphon-sweep)")

    n = gsub.add_parser("ntk", help="Graphon NTK spectra of pruned MLPs against sparsity (+ early training loss)")
    common(n, "random,snip,synflow")
    n.add_argument("--sparsities", default="0.5,0.8,0.9,0.95", help="comma-separated (default 0.5,0.8,0.9,0.95)")
    n.add_argument("--width", type=positive_int, default=1024, help="hidden width (default 1024)")
    n.add_argument("--samples", type=positive_int, default=256,
                   help="NTK batch: the first N training samples, the paper's setting (default 256)")
    n.add_argument("--per-pixel-input", action="store_true", help="input graphon per input feature (the "
                   "paper's), not min(K, d) cells of adjacent features")
    n.add_argument("--train-steps", type=int, default=200, help="Adam steps of the loss curve (0 = no training)")
    n.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    n.add_argument("--bias", action="store_true", help="MLPs with biases (default bias-free, as the NTK)")
    n.add_argument("--out", default="graphon-ntk", help="output folder (default graphon-ntk)")


def _number_list(text: str, flag: str, kind: type) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a comma-separated list of numbers; e.g. {flag} 100,500") from None
    if not values:
        raise ConfigError(f"{flag} is empty; pass a comma-separated list")
    return values


def _graphon_pruners(args: argparse.Namespace, default: str) -> list:
    import json

    from benchmark.analysis import PrunerSpec

    names = [n.strip() for item in (args.pruner or [default]) for n in item.split(",") if n.strip()]
    pargs: dict[str, dict] = {}
    for item in args.pruner_arg:
        key, sep, raw = item.partition("=")
        pname, dot, field = key.partition(".")
        if not sep or not dot or not field:
            raise ConfigError(f"--pruner-arg {item!r} is not PRUNER.KEY=VALUE; e.g. --pruner-arg synflow.iterations=20")
        if pname not in names:
            raise ConfigError(f"--pruner-arg {item!r} names pruner {pname!r}, which is not in --pruner {','.join(names)}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        pargs.setdefault(pname, {})[field] = value
    specs = [PrunerSpec(n, args.allocation, pargs.get(n)) for n in names]
    for sp in specs:
        sp.build()
    return specs


@command("graphon")
def cmd_graphon(args: argparse.Namespace) -> int:
    import json

    from benchmark import analysis

    if args.graphon_command == "estimate":
        masks, spec = analysis.load_masks(args.path)
        p = Path(args.path)
        out = Path(args.out) if args.out else (p if p.is_dir() else p.parent) / "graphon"
        df = analysis.estimate_masks(masks, args.K, args.method, out=out, title=str(p))
        from tabulate import tabulate

        if args.K is None:
            print(f"K fitted per layer (min({analysis.DEFAULT_K}, side) on each side): "
                  + ", ".join(f"{r.layer} {r.K_out}x{r.K_in}" for r in df.itertuples()))

        print(tabulate(df.values.tolist(), headers=list(df.columns), floatfmt=".4g"))
        if args.ntk:
            task = args.task or (spec or {}).get("task")
            if not task:
                raise ConfigError("--ntk needs the task of the fixed batch: pass --task (no spec.json next to the masks)")
            td = analysis.task_data(task)
            x = analysis.fixed_batch(td.data, args.samples)
            from graphon.spectrum import spectrum_metrics
            from graphon.plots import plot_spectrum
            import numpy as np

            theta = analysis.masks_ntk(masks, x, args.K or analysis.DEFAULT_K, per_pixel_input=args.per_pixel_input)
            met = spectrum_metrics(theta)
            plot_spectrum(np.linalg.eigvalsh(theta)[::-1], out / "ntk_spectrum.png", title=f"Graphon NTK, {task}")
            (out / "ntk.json").write_text(json.dumps(met.as_dict("ntk_"), indent=1) + "\n", encoding="utf-8")
            print("  ".join(f"{k}={v:.4g}" for k, v in met.as_dict("ntk_").items()))
        print(f"wrote {out}")
        return 0
    if args.graphon_command == "sweep":
        widths = _number_list(args.widths, "--widths", int)
        pruners = _graphon_pruners(args, "random")
        df = analysis.run_sweep(args.task, pruners, args.sparsity, widths, trials=args.trials or 10,
                                depth=args.depth, K=args.K, method=args.method, bias=not args.no_bias,
                                seed=args.seed, out=args.out, progress=lambda m: print(m, flush=True))
        print(analysis.sweep_markdown(df))
        print(f"wrote {args.out}")
        return 0
    sparsities = _number_list(args.sparsities, "--sparsities", float)
    pruners = _graphon_pruners(args, "random,snip,synflow")
    if args.train_steps < 0:
        raise ConfigError(f"--train-steps {args.train_steps} is negative; use 0 (no training) or e.g. 200")
    df = analysis.run_ntk(args.task, pruners, sparsities, width=args.width, depth=args.depth, K=args.K,
                          samples=args.samples, trials=args.trials or 1, train_steps=args.train_steps, lr=args.lr,
                          bias=args.bias, seed=args.seed, out=args.out, progress=lambda m: print(m, flush=True),
                          per_pixel_input=args.per_pixel_input)
    print(analysis.ntk_markdown(df))
    print(f"wrote {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------
# reproduce: `reproduce NAME [--quick] [--out DIR]`, `reproduce --list` (docs/reproductions/README.md)
def _add_reproduce_parser(sub) -> None:
    rp = sub.add_parser("reproduce", help="reproduce a published claim: run it and write NAME.md (+ .png) and the "
                        "index into --out; --list shows them")
    rp.add_argument("name", nargs="?", default=None, help="the reproduction, e.g. pilot-diagonal (see --list)")
    rp.add_argument("--quick", action="store_true", help="the small size the tests run (seconds, same mechanism)")
    rp.add_argument("--out", default="results/reproductions", help="folder of the pages (default "
                    "results/reproductions; the committed pages are regenerated with --out docs/reproductions)")
    rp.add_argument("--list", action="store_true", help="list the reproductions: name, source, claim")


@command("reproduce")
def cmd_reproduce(args: argparse.Namespace) -> int:
    from benchmark.reproduce import REPRODUCTIONS, reproduce

    if args.list:
        if args.name is not None:
            raise ConfigError("reproduce --list takes no NAME; run 'sparsebench reproduce --list' or "
                              "'sparsebench reproduce NAME'")
        from tabulate import tabulate

        rows = [(n, r.source, r.claim) for n, r in REPRODUCTIONS.items()]
        print(tabulate(rows, headers=["reproduction", "source", "claim"], maxcolwidths=[None, 40, 70]))
        return 0
    if args.name is None:
        raise ConfigError("reproduce needs a NAME; run 'sparsebench reproduce --list' to see the choices")
    result = reproduce(args.name, quick=args.quick, out_dir=Path(args.out))
    page = Path(args.out) / f"{args.name}.md"
    print(f"{args.name}: the claim {'HOLDS' if result.verdict else 'DOES NOT HOLD'} ({result.seconds:.0f} s"
          f"{', quick size' if args.quick else ''}): {result.verdict_line}")
    print(f"wrote {page} and {Path(args.out) / 'README.md'}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a scheduler's pre-emption), handled as Ctrl-C is: the pool's workers are
    stopped, every finished run is in the store, a rerun resumes."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
        # Ctrl-C / kill -INT stop the grid even when the driver was started with SIGINT ignored (a
        # background job of a non-interactive shell, a pytest-xdist worker): Python then installs no handler
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"sparsebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"sparsebench: {what}; finished runs are kept, run the same command again to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:   # the reader went away (``sparsebench list pruners | head``): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
