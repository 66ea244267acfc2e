"""RunSpec: everything that determines a run, and its identity (DESIGN.md, "RunSpec").

A run is a pure function of its spec.  :func:`make_spec` validates user input and resolves every
default (the task's full recipe, every pruner / allocation / reparam hyperparameter), so the
canonical JSON of a spec — sorted keys, defaults included, library versions excluded — names the run
completely.  Its SHA-256 (first 16 hex digits) is the run id: the same spec gives the same id, and a
run whose result exists is skipped (OpenLTH's idea).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from pruners import ALLOCATIONS, PRUNERS
from pruners.registry import ConfigError, build_config, config_dict, did_you_mean
from reparam import REPARAMS

SPEC_VERSION = 1
ANALYSIS_DEFAULTS: dict[str, Any] = {"graphon": False, "sparse_latency": False}
# Keys added after runs were recorded: left out of the spec while at their default, so earlier run ids
# stay valid (sparse_latency only measures the final model; it changes no mask or metric).
ANALYSIS_OMIT_AT_DEFAULT = frozenset({"sparse_latency"})


@dataclass(frozen=True, eq=False)
class RunSpec:
    """A fully resolved run specification.  Build it with :func:`make_spec`, not directly."""

    task: str
    pruner: str
    sparsity: float
    seed: int
    allocation: str
    reparam: str
    pruner_args: Mapping[str, Any] = field(default_factory=dict)
    allocation_args: Mapping[str, Any] = field(default_factory=dict)
    reparam_args: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    analysis: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["spec_version"] = SPEC_VERSION
        return json.loads(json.dumps(d))

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def run_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self.canonical_json() == other.canonical_json()

    def __hash__(self) -> int:
        return hash(self.run_id)

    def label(self) -> str:
        """A short human-readable description for progress lines."""
        parts = [self.task, self.pruner]
        if self.reparam != "none":
            parts.append(f"+{self.reparam}")
        parts.append(f"s={self.sparsity:g}")
        parts.append(f"seed={self.seed}")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        """Re-validate a stored spec (spec.json); unknown versions are refused."""
        d = dict(d)
        version = d.pop("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise ConfigError(f"spec version {version} is not supported by this sparsebench (expects "
                              f"{SPEC_VERSION}); re-run the grid with this version")
        return make_spec(**d)


def make_spec(task: str, pruner: str = "dense", sparsity: float = 0.0, seed: int = 0,
              allocation: str = "global", reparam: str = "none",
              pruner_args: Mapping[str, Any] | None = None,
              allocation_args: Mapping[str, Any] | None = None,
              reparam_args: Mapping[str, Any] | None = None,
              recipe: Mapping[str, Any] | None = None,
              analysis: Mapping[str, Any] | None = None) -> RunSpec:
    """Validate user input and return the resolved :class:`RunSpec` (ConfigError on bad input)."""
    from benchmark.tasks import get_task

    t = get_task(task)
    pruner_cls = PRUNERS.get(pruner)
    pruner_obj = build_config(pruner_cls, dict(pruner_args or {}), f"pruner {pruner!r}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or math.isnan(sparsity) \
            or not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity {sparsity!r} is outside [0, 1); use a fraction such as 0.9 for 90 %")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed {seed!r} must be a non-negative integer")
    if not pruner_cls.uses_sparsity:
        if sparsity != 0.0:
            raise ConfigError(f"pruner {pruner!r} does not prune; give it sparsity 0 (grids do this "
                              "automatically)")
        allocation, allocation_args = "global", {}
    alloc_obj = build_config(ALLOCATIONS.get(allocation), dict(allocation_args or {}), f"allocation {allocation!r}")
    reparam_obj = build_config(REPARAMS.get(reparam), dict(reparam_args or {}), f"reparam {reparam!r}")
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
    an = {k: v for k, v in an.items() if not (k in ANALYSIS_OMIT_AT_DEFAULT and v == ANALYSIS_DEFAULTS[k])}
    return RunSpec(
        task=t.name, pruner=pruner, sparsity=float(sparsity), seed=int(seed),
        allocation=allocation, reparam=reparam,
        pruner_args=config_dict(pruner_obj), allocation_args=config_dict(alloc_obj),
        reparam_args=config_dict(reparam_obj), recipe=config_dict(full_recipe), analysis=an,
    )
