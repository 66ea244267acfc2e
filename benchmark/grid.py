"""Grid files: TOML that expands to a list of validated RunSpecs (task × pruner × reparam × sparsity × seed).

Format (see grids/quick.toml and docs/grids.md)::

    name = "quick"
    description = "..."
    tasks = ["digits-mlp", "fmnist-lenet300"]
    sparsities = [0.5, 0.9, 0.98]
    seeds = [0, 1]
    analysis = { graphon = false }

    [recipe]                       # overrides applied to every task's recipe
    epochs = 3
    [task_recipe.fmnist-lenet300]  # overrides for one task (applied after [recipe])
    max_train_batches = 200
    dataset_args = { validation = 10000 }   # merged into every task's dataset arguments (e.g. a
                                            # held-out validation split for a hyperparameter sweep)

    [[pruners]]
    name = "random"
    allocation = ["uniform", "global"]   # a string or a list (expanded)
    allocation_args = {}
    args = {}                            # hyperparameters
    schedule = ["at_init", "gradual"]    # optional: a string or a list (expanded); a scoring pruner's
    schedule_args = { gradual = { end = 0.7 } }   # schedule and its hyperparameters ('sparsebench list
                                         # schedules'); with one schedule: schedule_args = { end = 0.7 }
    sparsities = [0.9]                   # optional: replaces the grid's sparsities for this entry
    reparams = ["none", "signin"]        # optional: only these [[reparams]] entries (by name or id)

    [[reparams]]                         # optional; default: one entry "none"
    name = "none"                        # or a stack: name = ["signin", "wd_schedule"] with
    args = {}                            # args = { signin = {...}, wd_schedule = {...} }
    id = "plain"                         # optional: lets a pruner pick this entry among several of
                                         # one name (e.g. a HAM alpha chosen per base method)

    run_timeout = 86400                  # optional: per-run time limit in seconds (every executor;
                                         # --run-timeout overrides it; default 7 days)

    [resources]                          # optional: what each run needs (Ray / Slurm schedule by it)
    cpus = 1                             # CPU cores per run (> 0)
    gpus = 0                             # GPUs per run (>= 0; fractions share a GPU under Ray)
    [task_resources.fmnist-lenet300]     # overrides for one task (applied after [resources])
    gpus = 1

Resources are not part of a run's spec: the same run on more cores has the same id and result.

Every spec is validated before anything runs; the first problem is a ConfigError naming the key.
Pruners that do not prune (``dense``) run once per task and seed, at sparsity 0.
"""
from __future__ import annotations

import re

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmark.spec import RunSpec, make_spec
from reparam.stack import canonical
from benchmark.tasks import get_task
from pruners import PRUNERS
from pruners.registry import ConfigError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = {"name", "description", "tasks", "sparsities", "seeds", "analysis", "recipe", "task_recipe", "dataset_args",
            "pruners", "reparams", "resources", "task_resources", "run_timeout"}
RESOURCE_KEYS = {"cpus", "gpus"}
PRUNER_KEYS = {"name", "allocation", "allocation_args", "args", "schedule", "schedule_args", "sparsities", "reparams"}
REPARAM_KEYS = {"name", "args", "id"}


def _stack_entry(r: Any, where: str) -> Any:
    """A [[reparams]] entry whose name is a list (a stack, ``["signin", "wd_schedule"]``) with the name
    written as the stack's canonical ``signin+wd_schedule``; other entries unchanged."""
    if isinstance(r, dict) and isinstance(r.get("name"), list):
        names = r["name"]
        if not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.name must be a reparam name or a non-empty list of names (a stack)")
        try:
            return {**r, "name": canonical(names)}
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return r


def _width(value: Any) -> int:
    """How many entries a key that may be a string or a list expands to (for the size bound)."""
    return max(1, len(value)) if isinstance(value, list) else 1


@dataclass(frozen=True)
class Resources:
    """What one run asks of an executor that schedules by resources (Ray tasks, Slurm jobs)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass
class Grid:
    name: str
    description: str
    specs: list[RunSpec]
    source: str = ""
    resources: dict[str, Resources] = field(default_factory=dict)   # run id -> resources
    run_timeout: float | None = None   # seconds a run may take (the grid's ``run_timeout``; None: the default)


def _resources(value: Any, where: str, base: Resources) -> Resources:
    table = _table(value, where)
    _unknown(set(table), RESOURCE_KEYS, where)
    for key, v in table.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (key == "cpus" and v == 0):
            raise ConfigError(f"{where}.{key} = {v!r} must be a number {'> 0' if key == 'cpus' else '>= 0'}, "
                              f"e.g. {key} = {1 if key == 'cpus' else 0}")
    return replace(base, **{k: float(v) for k, v in table.items()})


def _run_timeout(value: Any, where: str) -> float | None:
    """The grid's per-run time limit: a positive number of seconds, or None when the key is absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ConfigError(f"{where}: run_timeout = {value!r} must be a positive number of seconds, e.g. "
                          "run_timeout = 86400 (one day)")
    return float(value)


def _unknown(keys: set[str], allowed: set[str], where: str) -> None:
    for key in sorted(keys - allowed):
        raise ConfigError(f"unknown key {key!r} in {where}{did_you_mean(key, sorted(allowed))}; "
                          f"valid keys: {', '.join(sorted(allowed))}")


def _list(value: Any, where: str, kind: type | tuple[type, ...]) -> list:
    if isinstance(value, kind) and not isinstance(value, list):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, kind):
            raise ConfigError(f"{where} holds {v!r}, which has the wrong type")
    return value


def _table(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, e.g. {where} = {{ key = value }}")
    return value


def load_grid(path: str | Path) -> Grid:
    """Read and expand a grid file; ConfigError on any malformed or invalid entry."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"grid file {str(path)!r} is a directory; pass a TOML grid file in it, such as "
                          "grids/quick.toml")
    if not path.is_file():
        raise ConfigError(f"grid file {str(path)!r} does not exist; pass a TOML grid such as grids/quick.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"grid file {str(path)!r} is not valid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"grid file {str(path)!r} is not UTF-8 text; save it as UTF-8") from None
    grid = expand_grid(raw, where=path.name)
    grid.source = str(path)
    return grid


#: The most runs one grid file may expand to (a larger one is refused before expanding; split it).
MAX_RUNS = 20_000


def expand_grid(raw: dict, where: str = "grid") -> Grid:
    """Expand a parsed grid table to validated RunSpecs (deduplicated, order preserved)."""
    _unknown(set(raw), TOP_KEYS, where)
    name = raw.get("name", Path(where).stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a non-empty string")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"{where}: name {name!r} must be a plain name (letters, digits, '.', '_', '-'; no "
                          "path), e.g. name = \"my-grid\"")
    tasks = _list(raw.get("tasks"), f"{where}: tasks", str)
    sparsities = _list(raw.get("sparsities", [0.0]), f"{where}: sparsities", (int, float))
    seeds = _list(raw.get("seeds", [0]), f"{where}: seeds", int)
    recipe = _table(raw.get("recipe"), f"{where}: recipe")
    task_recipe = _table(raw.get("task_recipe"), f"{where}: task_recipe")
    analysis = _table(raw.get("analysis"), f"{where}: analysis")
    dataset_args = _table(raw.get("dataset_args"), f"{where}: dataset_args")
    base_resources = _resources(raw.get("resources"), f"{where}: resources", Resources())
    task_resources = {}
    for t, value in _table(raw.get("task_resources"), f"{where}: task_resources").items():
        if t not in tasks:
            raise ConfigError(f"{where}: task_resources names task {t!r}, which is not in tasks "
                              f"{tasks}{did_you_mean(t, tasks)}")
        task_resources[t] = _resources(value, f"{where}: task_resources.{t}", base_resources)
    for t in task_recipe:
        if t not in tasks:
            raise ConfigError(f"{where}: task_recipe names task {t!r}, which is not in tasks "
                              f"{tasks}{did_you_mean(t, tasks)}")
        _table(task_recipe[t], f"{where}: task_recipe.{t}")
    pruner_entries = raw.get("pruners")
    if not isinstance(pruner_entries, list) or not pruner_entries:
        raise ConfigError(f"{where}: add at least one [[pruners]] entry with a name, e.g. name = \"random\"")
    reparam_entries = raw.get("reparams", [{"name": "none"}])
    if not isinstance(reparam_entries, list) or not reparam_entries:
        raise ConfigError(f"{where}: reparams must be a list of [[reparams]] tables with a name")
    reparam_entries = [_stack_entry(r, f"{where}: reparams[{j}]") for j, r in enumerate(reparam_entries)]

    bound = len(tasks) * len(seeds) * len(reparam_entries) * sum(
        len(e.get("sparsities", sparsities)) * _width(e.get("allocation")) * _width(e.get("schedule"))
        if isinstance(e, dict) and isinstance(e.get("sparsities", sparsities), list) else 1 for e in pruner_entries)
    if bound > MAX_RUNS:  # checked before expanding: every spec is validated, ~1 ms each
        raise ConfigError(f"{where}: expands to up to {bound} runs, more than the {MAX_RUNS} a grid may hold; "
                          "split it into several grid files")
    specs: list[RunSpec] = []
    resources: dict[str, Resources] = {}
    seen: set[str] = set()
    for i, p in enumerate(pruner_entries):
        pw = f"{where}: pruners[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{pw} must be a table with a name")
        _unknown(set(p), PRUNER_KEYS, pw)
        if "name" not in p or not isinstance(p["name"], str):
            raise ConfigError(f"{pw} needs name = \"<pruner>\"; run 'sparsebench list pruners'")
        pcls = PRUNERS.get(p["name"])
        allocations = _list(p.get("allocation", "global"), f"{pw}.allocation", str)
        schedules = _list(p.get("schedule", ""), f"{pw}.schedule", str)
        sched_args = _table(p.get("schedule_args"), f"{pw}.schedule_args")
        if len(schedules) > 1 and sched_args and all(k in schedules and isinstance(v, dict)
                                                      for k, v in sched_args.items()):
            args_of = {sc: dict(sched_args.get(sc, {})) for sc in schedules}   # keyed by schedule
        else:
            args_of = {sc: sched_args for sc in schedules}
        p_sparsities = _list(p.get("sparsities", sparsities), f"{pw}.sparsities", (int, float))
        if not pcls.uses_sparsity:
            p_sparsities, allocations, schedules = [0.0], ["global"], [""]
        # optional: restrict this pruner to some of the grid's [[reparams]] entries (by name or id)
        only = _list(p["reparams"], f"{pw}.reparams", str) if "reparams" in p else None
        if only is not None:
            names = [k for r in reparam_entries if isinstance(r, dict) for k in (r.get("name"), r.get("id")) if k]
            for n in only:
                if n not in names:
                    raise ConfigError(f"{pw}.reparams names {n!r}, which is not a [[reparams]] entry of the grid "
                                      f"{names}{did_you_mean(n, [str(x) for x in names])}")
        for j, r in enumerate(reparam_entries):
            rw = f"{where}: reparams[{j}]"
            if not isinstance(r, dict):
                raise ConfigError(f"{rw} must be a table with a name")
            _unknown(set(r), REPARAM_KEYS, rw)
            if "name" not in r or not isinstance(r["name"], str):
                raise ConfigError(f"{rw} needs name = \"<reparam>\"; run 'sparsebench list reparams'")
            if only is not None and r["name"] not in only and r.get("id") not in only:
                continue
            for task in tasks:
                rec = {**recipe, **task_recipe.get(task, {})}
                for alloc, sched in ((a, sc) for a in allocations for sc in schedules):
                    for s in p_sparsities:
                        for seed in seeds:
                            try:
                                spec = make_spec(task=task, pruner=p["name"], sparsity=s, seed=seed,
                                                 allocation=alloc, reparam=r["name"],
                                                 pruner_args=_table(p.get("args"), f"{pw}.args"),
                                                 schedule=sched, schedule_args=args_of.get(sched, {}),
                                                 allocation_args=_table(p.get("allocation_args"),
                                                                        f"{pw}.allocation_args"),
                                                 reparam_args=_table(r.get("args"), f"{rw}.args"),
                                                 recipe=rec, analysis=analysis,
                                                 dataset_args={**get_task(task).dataset_args, **dataset_args}
                                                 if dataset_args else None)
                            except ConfigError as exc:
                                raise ConfigError(f"{where}: {exc}") from None
                            if spec.run_id not in seen:
                                seen.add(spec.run_id)
                                specs.append(spec)
                                resources[spec.run_id] = task_resources.get(task, base_resources)
    return Grid(name=name, description=str(raw.get("description", "")), specs=specs, resources=resources,
                run_timeout=_run_timeout(raw.get("run_timeout"), where))
