"""RunSpec: everything that determines a run, and its identity (DESIGN.md, "RunSpec").

A run is a pure function of its spec.  :func:`make_spec` validates user input and resolves the task
into the spec — its dataset and ``dataset_args``, model and ``model_args`` and full recipe — together
with every pruner / allocation / reparam hyperparameter and the ``version`` of each of those classes
(a plugin's version included).  ``spec.json`` records all of it (:meth:`RunSpec.to_dict`).

The run id is the SHA-256 (first 16 hex digits) of the *hashed* JSON (:meth:`RunSpec.hashed_dict`):
sorted keys, library versions excluded and, as in OpenLTH, every hyperparameter or recipe field at its
class default left out.  So adding a hyperparameter with a default keeps every stored id valid, while
changing a default must bump that class's ``version`` (which is hashed).  The same spec gives the same
id, and a run whose result exists is skipped (OpenLTH's idea).  Specs of the first format
(``spec_version`` 1: the task by name only) are recognised and rewritten by ``sparsebench store
migrate`` (docs/results-schema.md).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from pruners import ALLOCATIONS, PRUNERS, SCHEDULES
from pruners.registry import ConfigError, build_config, config_dict, did_you_mean
from pruners.schedules import bind_schedule
from reparam.stack import build_reparam, canonical, hashed_args, reparam_config, reparam_version

SPEC_VERSION = 2
ANALYSIS_DEFAULTS: dict[str, Any] = {"graphon": False, "sparse_latency": False}


class OldSpecFormat(ConfigError):
    """A stored spec of an earlier format (``sparsebench store migrate`` rewrites it)."""


def field_defaults(cls: type) -> dict[str, Any]:
    """The JSON-friendly default of every init field of dataclass ``cls`` that has one."""
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return json.loads(json.dumps(out, default=list))


def non_default(args: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """``args`` without the entries equal to ``cls``'s field defaults (OpenLTH's hashing rule)."""
    defaults = field_defaults(cls)
    return {k: v for k, v in args.items() if k not in defaults or defaults[k] != v or type(defaults[k]) is not type(v)}


@dataclass(frozen=True, eq=False)
class RunSpec:
    """A fully resolved run specification.  Build it with :func:`make_spec`, not directly."""

    task: str
    pruner: str
    sparsity: float
    seed: int
    allocation: str
    reparam: str
    dataset: str
    model: str
    schedule: str = ""
    schedule_args: Mapping[str, Any] = field(default_factory=dict)
    dataset_args: Mapping[str, Any] = field(default_factory=dict)
    model_args: Mapping[str, Any] = field(default_factory=dict)
    pruner_args: Mapping[str, Any] = field(default_factory=dict)
    allocation_args: Mapping[str, Any] = field(default_factory=dict)
    reparam_args: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    analysis: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything, as recorded in spec.json."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["spec_version"] = SPEC_VERSION
        return json.loads(json.dumps(d))

    def hashed_dict(self) -> dict[str, Any]:
        """What the run id hashes: :meth:`to_dict` without the fields at their class defaults."""
        from benchmark.tasks.base import Recipe

        d = self.to_dict()
        d["pruner_args"] = non_default(d["pruner_args"], PRUNERS.get(self.pruner))
        d["allocation_args"] = non_default(d["allocation_args"], ALLOCATIONS.get(self.allocation))
        d["reparam_args"] = hashed_args(self.reparam, d["reparam_args"], non_default)
        if d["schedule"]:
            d["schedule_args"] = non_default(d["schedule_args"], SCHEDULES.get(self.schedule))
        else:   # the pruner's own schedule: not hashed, so stored ids stay valid
            d.pop("schedule"), d.pop("schedule_args")
        d["recipe"] = non_default(d["recipe"], Recipe)
        d["analysis"] = {k: v for k, v in d["analysis"].items() if ANALYSIS_DEFAULTS.get(k) != v}
        return {k: v for k, v in d.items() if v != {}}

    def canonical_json(self) -> str:
        return json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def run_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self.canonical_json() == other.canonical_json()

    def __hash__(self) -> int:
        return hash(self.run_id)

    def label(self) -> str:
        """A short human-readable description for progress lines."""
        return run_label(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        """Re-validate a stored spec (spec.json).  The stored task fields (dataset, model, their args) are
        kept as recorded; a spec of format 1 is :class:`OldSpecFormat`, an unknown format a ConfigError;
        a class version that differs from the installed one is a ConfigError too (that run is another
        run now)."""
        d = dict(d)
        version = d.pop("spec_version", SPEC_VERSION)
        if version == 1:
            raise OldSpecFormat("spec of format 1 (written before the task was part of the run id); run "
                                "'sparsebench store migrate OUT' to rewrite it")
        if version != SPEC_VERSION:
            raise ConfigError(f"spec version {version} is not supported by this sparsebench (expects "
                              f"{SPEC_VERSION}); re-run the grid with this version")
        stored = d.pop("versions", None)
        spec = make_spec(**d)
        if stored is not None and dict(stored) != dict(spec.versions):
            raise ConfigError(f"spec was recorded with versions {dict(stored)}, the installed classes are "
                              f"{dict(spec.versions)}; re-run the grid to get results of this version")
        return spec

    @classmethod
    def from_old_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        """The spec of a format-1 spec.json (task by name only): its task resolved from the catalogue as
        it is now, and today's class versions (``sparsebench store migrate``)."""
        d = {k: v for k, v in d.items() if k != "spec_version"}
        return make_spec(**d)


def run_label(d: Mapping[str, Any]) -> str:
    """``task pruner[@schedule] [+reparam] s=… seed=…`` of a spec dict or a result record (progress lines,
    ``sparsebench status``)."""
    sparsity = d.get("sparsity", d.get("target_sparsity")) or 0
    parts = [str(d.get("task")), str(d.get("pruner")) + (f"@{d['schedule']}" if d.get("schedule") else "")]
    if d.get("reparam") not in (None, "none"):
        parts.append(f"+{d['reparam']}")
    return " ".join(parts + [f"s={sparsity:g}", f"seed={d.get('seed')}"])


def make_spec(task: str, pruner: str = "dense", sparsity: float = 0.0, seed: int = 0,
              allocation: str = "global", reparam: str | list[str] = "none",
              pruner_args: Mapping[str, Any] | None = None,
              schedule: str | None = None, schedule_args: Mapping[str, Any] | None = None,
              allocation_args: Mapping[str, Any] | None = None,
              reparam_args: Mapping[str, Any] | None = None,
              recipe: Mapping[str, Any] | None = None,
              analysis: Mapping[str, Any] | None = None,
              dataset: str | None = None, dataset_args: Mapping[str, Any] | None = None,
              model: str | None = None, model_args: Mapping[str, Any] | None = None) -> RunSpec:
    """Validate user input and return the resolved :class:`RunSpec` (ConfigError on bad input).

    ``reparam`` may be a stack: a list of names or names joined by ``+`` (``reparam.stack``), with
    ``reparam_args`` a table per member.  ``dataset`` / ``model`` and their args default to the task's; given, they replace them (a stored
    spec keeps what it was run with).  ``schedule`` (a name of ``sparsebench list schedules``) runs a
    scoring pruner under that schedule; empty or the pruner's own, it is not recorded (docs/methods.md,
    "The three axes")."""
    from benchmark.tasks import DATASETS, MODELS, dataset_info, get_task
    from benchmark.tasks.base import Recipe
    from pruners.plugins import pruner_metadata

    t = get_task(task)
    dataset = t.dataset if dataset is None else dataset
    model = t.model if model is None else model
    DATASETS.get(dataset), MODELS.get(model)   # unknown names: ConfigError with a did-you-mean
    dataset_args = dict(t.dataset_args if dataset_args is None else dataset_args)
    model_args = dict(t.model_args if model_args is None else model_args)
    dataset_info(dataset, **dataset_args)   # unknown or ill-typed dataset arguments: ConfigError
    pruner_cls = PRUNERS.get(pruner)
    pruner_obj = build_config(pruner_cls, dict(pruner_args or {}), f"pruner {pruner!r}")
    schedule, schedule_args = bind_schedule(pruner_obj, schedule, schedule_args)
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or math.isnan(sparsity) \
            or not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity {sparsity!r} is outside [0, 1); use a fraction such as 0.9 for 90 %")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed {seed!r} must be an integer in [0, 2**63), e.g. 0")
    if not pruner_cls.uses_sparsity:
        if sparsity != 0.0:
            raise ConfigError(f"pruner {pruner!r} does not prune; give it sparsity 0 (grids do this "
                              "automatically)")
        allocation, allocation_args = "global", {}
    alloc_obj = build_config(ALLOCATIONS.get(allocation), dict(allocation_args or {}), f"allocation {allocation!r}")
    check_allocation = getattr(pruner_obj, "check_allocation", None)   # e.g. SynFlow's reference counting
    if check_allocation is not None:
        check_allocation(alloc_obj)
    reparam = canonical(reparam)   # a stack (a list, or names joined by '+') in stack order
    reparam_obj = build_reparam(reparam, reparam_args)
    reason = reparam_obj.compatible(pruner_obj)
    pruner_check = getattr(pruner_obj, "compatible_reparam", None)  # the pruner may refuse too (STR, CS)
    if not reason and pruner_check is not None:
        reason = pruner_check(reparam_obj)
    if reason:
        raise ConfigError(f"pruner {pruner!r} cannot be combined with reparam {reparam!r}: {reason}")
    full_recipe = t.recipe.override(dict(recipe or {}))
    extra_check = getattr(pruner_obj, "check_recipe", None)
    if extra_check is not None:
        extra_check(full_recipe)
    extra_check = getattr(reparam_obj, "check_recipe", None)
    if extra_check is not None:
        extra_check(full_recipe)
    an = dict(ANALYSIS_DEFAULTS)
    for key, value in dict(analysis or {}).items():
        if key not in ANALYSIS_DEFAULTS:
            raise ConfigError(f"unknown analysis key {key!r}{did_you_mean(key, list(ANALYSIS_DEFAULTS))}; "
                              f"valid: {', '.join(ANALYSIS_DEFAULTS)}")
        from pruners.registry import coerce_value
        an[key] = coerce_value(f"analysis {key}", value, ANALYSIS_DEFAULTS[key])
    versions = {"pruner": pruner_metadata(pruner)["version"], "allocation": str(ALLOCATIONS.get(allocation).version),
                "reparam": reparam_version(reparam), "recipe": Recipe.version}
    if schedule:
        versions["schedule"] = str(SCHEDULES.get(schedule).version)
    return RunSpec(
        task=t.name, pruner=pruner, sparsity=float(sparsity), seed=int(seed),
        allocation=allocation, reparam=reparam, dataset=dataset, model=model,
        schedule=schedule, schedule_args=schedule_args,
        dataset_args=json.loads(json.dumps(dataset_args)), model_args=json.loads(json.dumps(model_args)),
        pruner_args=config_dict(pruner_obj), allocation_args=config_dict(alloc_obj),
        reparam_args=reparam_config(reparam_obj), recipe=config_dict(full_recipe), analysis=an, versions=versions,
    )


def components(spec: RunSpec) -> tuple[Any, Any, Any]:
    """The pruner (its schedule bound), allocation and reparam objects of ``spec``: the one place a run's
    method objects are built from a spec (the runner, the analysis)."""
    pruner = build_config(PRUNERS.get(spec.pruner), dict(spec.pruner_args), f"pruner {spec.pruner!r}")
    bind_schedule(pruner, spec.schedule, spec.schedule_args)
    allocation = build_config(ALLOCATIONS.get(spec.allocation), dict(spec.allocation_args),
                              f"allocation {spec.allocation!r}")
    return pruner, allocation, build_reparam(spec.reparam, spec.reparam_args)
