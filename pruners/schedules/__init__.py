"""Schedules: when masks change during training (score × allocation × **schedule**; issue 19).

``SCHEDULES`` holds the registered schedules (``sparsebench list schedules``): ``at_init``,
``oneshot``, ``gradual``, ``periodic``, ``phases``, ``rounds``; :func:`bind_schedule` gives a pruner
the schedule a grid asks for.  The shared pieces (the cubic ramp, the cosine fraction, nested masks,
the dense θ-gradient, weight overrides) live in :mod:`pruners.schedules.helpers`.
"""
from __future__ import annotations

from typing import Any, Mapping

from pruners.registry import ConfigError, build_config, config_dict
from pruners.schedules.base import SCHEDULES, Schedule, register_schedule
from pruners.schedules.helpers import (cosine_fraction, cubic_sparsity, effective_weights, functional_forward,
                                       install_weight_override, magnitude_scores, nested_masks, override_weights,
                                       plain_reparam_reason, plain_view, prunable_modules, remove_weight_override,
                                       reset_all_optimizer_state, theta_gradients)
from pruners.schedules import at_init as _at_init, oneshot as _oneshot, gradual as _gradual  # noqa: F401
from pruners.schedules import periodic as _periodic, phases as _phases, rounds as _rounds  # noqa: F401


def bind_schedule(pruner: Any, name: str | None, args: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Give ``pruner`` the schedule ``name`` with ``args``; return what the run records: the schedule's
    name and hyperparameters, or ``("", {})`` when the pruner runs its own schedule (at-init scorers,
    presets such as ``gmp``, and pruners that learn their masks or define ``initial_masks`` /
    ``callbacks`` themselves).  Bad combinations are a ConfigError naming the fix.
    """
    pname = pruner.registry_name or type(pruner).__name__
    args = dict(args or {})
    if not name:
        if args:
            raise ConfigError(f"pruner {pname!r} got schedule_args without a schedule; add schedule = \"<name>\" "
                              "(run 'sparsebench list schedules')")
        return "", {}
    cls = SCHEDULES.get(name)
    if not pruner.uses_sparsity:
        return "", {}
    own = pruner.schedule_preset
    if own != "at_init":
        if name == own and not args:
            return "", {}
        raise ConfigError(f"pruner {pname!r} is a preset ({pruner.score_name} × {own}) and sets its schedule through "
                          f"its own args; for another schedule use pruner = {pruner.score_name!r}, schedule = {name!r}")
    if pruner.own_schedule:
        raise ConfigError(f"pruner {pname!r} defines its own training-time mechanism (initial_masks / callbacks) "
                          "and takes no schedule; remove schedule from its [[pruners]] entry")
    schedule = build_config(cls, args, f"schedule {name!r}")
    reason = schedule.compatible(pruner)
    if reason:
        raise ConfigError(f"pruner {pname!r} cannot run under schedule {name!r}: {reason}")
    if name == "at_init":
        return "", {}
    pruner.mask_schedule = schedule
    return name, config_dict(schedule)


__all__ = ["SCHEDULES", "Schedule", "bind_schedule", "register_schedule", "cosine_fraction", "cubic_sparsity",
           "effective_weights", "functional_forward", "install_weight_override", "magnitude_scores",
           "nested_masks", "override_weights", "plain_reparam_reason", "plain_view", "prunable_modules",
           "remove_weight_override", "reset_all_optimizer_state", "theta_gradients", "ConfigError"]
