"""The conformance kit as pytest tests, for a plugin package's own test suite (issue 21).

As scikit-learn's ``parametrize_with_checks``, :func:`parametrize_with_checks` turns each registered
pruner, schedule or reparam into one parametrised test per check of :mod:`pruners.conformance`::

    from pruners.testing import parametrize_with_checks

    @parametrize_with_checks(["force", "schedule:halfway", "reparam:noop_geometry"])
    def test_sparsebench_conformance(target, check):
        check(target)

A failing check fails its test with the check's one-line reason (test id ``force-density``); a check
that does not apply is skipped; a caveat (missing metadata, a collapsed layer under ``global``) passes
with a :class:`~pruners.conformance.ConformanceWarning`.  The models, data and runs behind the checks
are computed once per target and shared by its checks.

``sparsebench plugin check FILE`` and ``sparsebench submit`` run the same tests through
:func:`run_checks` (``pytest.main`` on this file) and print the table of :data:`RESULTS`.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest

from pruners import conformance
from pruners.conformance import CHECKS, FAIL, SKIP, WARN, ConformanceWarning, KitConfig, Target

#: (target id, check) -> (status, reason) of every check run in this process, for the CLI's table.
RESULTS: dict[tuple[str, str], tuple[str, str]] = {}


def run_check(target: Target, *, check: str, config: KitConfig) -> None:
    """Run one check on ``target``: fail / skip / warn the calling test as the check says."""
    status, reason = conformance.outcome(target, check, config)
    RESULTS[target.id, check] = (status, reason)
    if status == FAIL:
        pytest.fail(f"{target.id}: conformance check {check!r} failed: {reason}", pytrace=False)
    if status == SKIP:
        pytest.skip(reason)
    if status == WARN:
        warnings.warn(f"{target.id}: {check}: {reason}", ConformanceWarning, stacklevel=2)


def parametrize_with_checks(targets: Iterable[str | Target], args: Mapping[str, Mapping[str, Any]] | None = None,
                            config: KitConfig | None = None):
    """``pytest.mark.parametrize("target, check", ...)`` over every target × check.

    Args:
        targets: names of registered pruners, ``"schedule:NAME"`` or ``"reparam:NAME"`` (or Targets).
        args: hyperparameters per target name, e.g. ``{"force": {"iterations": 5}}``.
        config: how the kit runs (:class:`~pruners.conformance.KitConfig`; default: all tiny models).
    """
    cfg = config or KitConfig()
    resolved = [Target.of(t, (args or {}).get(t if isinstance(t, str) else t.id)) for t in targets]
    cases = [pytest.param(t, partial(run_check, check=c, config=cfg), id=f"{t.id}-{c}")
             for t in resolved for c in CHECKS]
    return pytest.mark.parametrize("target, check", cases)


# ------------------------------------------------------------------------------------------------
# what `sparsebench plugin check` runs through pytest.main
SELECTED: list[Target] = []
SELECTED_CONFIG: list[KitConfig] = []


def pytest_generate_tests(metafunc) -> None:
    if metafunc.function.__name__ == "test_selected":
        cfg = SELECTED_CONFIG[0] if SELECTED_CONFIG else KitConfig()
        mark = parametrize_with_checks(SELECTED, config=cfg)
        metafunc.parametrize(*mark.args, **mark.kwargs)


def test_selected(target, check):
    """Collected only when :func:`run_checks` hands this file to pytest."""
    check(target)


def run_checks(targets: Iterable[Target], config: KitConfig) -> tuple[int, list[tuple[str, str, str, str]]]:
    """Run the checks of ``targets`` through ``pytest.main`` (in this process, so the plugins loaded
    here are registered); return pytest's exit code and the table rows (target, check, result, reason)."""
    # pytest imports this file as its own module: the selection lives on the imported package module
    import pruners.testing as here

    here.SELECTED[:] = list(targets)
    here.SELECTED_CONFIG[:] = [config]
    RESULTS.clear()
    argv = [str(Path(__file__)), "-p", "no:cacheprovider", "-p", "no:terminal", "-o", "addopts=",
            "--rootdir", str(Path(__file__).parent), "-W", f"ignore::{ConformanceWarning.__module__}."
            f"{ConformanceWarning.__qualname__}"]
    autoload = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"   # the kit needs no third-party pytest plugin
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            code = int(pytest.main(argv))
    finally:
        if autoload is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = autoload
    rows = [(t.id, c, *RESULTS.get((t.id, c), (FAIL, "did not run (pytest could not collect it)")))
            for t in here.SELECTED for c in CHECKS]
    return code, rows


def format_rows(rows: list[tuple[str, str, str, str]], fmt: str = "plain") -> str:
    """The pass / fail table."""
    from tabulate import tabulate

    return tabulate(rows, headers=["target", "check", "result", "reason"], tablefmt=fmt)


def first_failure(rows: list[tuple[str, str, str, str]]) -> str:
    """One line for the first failing check of ``rows`` ('' when none failed)."""
    for target, check, status, reason in rows:
        if status == FAIL:
            kind, _, name = target.rpartition(":") if ":" in target.split(",")[0] else ("pruner", "", target)
            return f"{kind} {name!r} fails the conformance check {check!r}: {reason}"
    return ""
