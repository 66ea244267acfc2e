"""Reproductions of the papers' published claims: one registered function per claim (issue 11).

A reproduction is one module with a function ``run(quick: bool, out_dir: Path) -> Result`` registered
with :func:`register_reproduction`::

    @register_reproduction("pilot-diagonal", source="Mask in the Mirror (ICLR 2025), Fig. 1",
                           claim="PILoT with a decaying schedule reaches the ground truth ...")
    def run(quick: bool, out_dir: Path) -> Result: ...

``quick`` selects a small size (seconds; the tests run it and assert the qualitative claim) that
still exercises the real mechanism; the full size produces the committed page
``docs/reproductions/NAME.md`` (+ ``NAME.png``).  :func:`reproduce` runs one reproduction and writes
its page and the index ``README.md`` of the output folder (:mod:`benchmark.reproduce.writer`).

The reproductions drive the project's own building blocks (reparams in :mod:`reparam`, data sets
and models of :mod:`benchmark.tasks`) with small explicit full-batch float64 loops
(:mod:`benchmark.reproduce.loop`); where a baseline has no implementation in the project (L1 on x,
the largest-gradient selection of the NanoAdam toy) the page says so.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from pruners.registry import ConfigError, Registry, did_you_mean

#: Where ``sparsebench reproduce`` writes pages by default (relative to the working directory): a results
#: folder, so a user's run never overwrites the committed pages; their regeneration passes
#: ``--out docs/reproductions``.
DEFAULT_OUT = Path("results/reproductions")


@dataclass
class Result:
    """What one reproduction reports.

    Attributes:
        table: the measured numbers (one row per method / setting), rendered on the page.
        figure: path of the PNG written by the run (inside ``out_dir``), or ``None``.
        published: the published value or claim, in words / numbers.
        ours: our value, in the same terms.
        verdict: whether the qualitative claim holds in our run.
        verdict_line: one sentence saying what holds and what does not.
        setting: Markdown describing the setting (data, model, optimiser, sizes) and every choice we
            made where the paper's setting is not public.
        differences: the honest differences from the paper and why our result may differ.
        checks: the individual qualitative checks behind ``verdict`` (name → passed).
        diagnosis: Markdown for a claim that does not hold: what was checked (the method against the
            formula, the setup against the paper's, the check against the claim), what was found, and what
            would settle it.
    """

    table: pd.DataFrame
    figure: Path | None
    published: str
    ours: str
    verdict: bool
    verdict_line: str
    setting: str = ""
    differences: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    diagnosis: str = ""
    seconds: float = 0.0
    quick: bool = False


RunFn = Callable[[bool, Path], Result]


@dataclass(frozen=True)
class Reproduction:
    """A registered reproduction: its name, the paper / figure / table it reproduces, the claim."""

    name: str
    source: str
    claim: str
    run: RunFn
    module: str = ""


REPRODUCTIONS: Registry[Reproduction] = Registry("reproduction")


def register_reproduction(name: str, *, source: str, claim: str) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``run(quick, out_dir) -> Result`` as the reproduction ``name``."""
    if not source or not claim:
        raise ConfigError(f"reproduction {name!r} needs a source (paper, figure or table) and a claim")

    def deco(fn: RunFn) -> RunFn:
        REPRODUCTIONS.add(name, Reproduction(name, source, claim, fn, fn.__module__))
        return fn

    return deco


def get_reproduction(name: str) -> Reproduction:
    """The registered reproduction ``name``; an unknown name is a one-line ConfigError."""
    if name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {name!r}{did_you_mean(name, REPRODUCTIONS.names())}; "
                          "run 'sparsebench reproduce --list' to see the choices")
    return REPRODUCTIONS.get(name)


def reproduce(name: str, quick: bool = False, out_dir: Path | str = DEFAULT_OUT,
              write: bool = True) -> Result:
    """Run reproduction ``name``; with ``write`` render ``out_dir/NAME.md`` and the index."""
    from benchmark.reproduce.writer import write_index, write_page

    rep = get_reproduction(name)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {str(out)!r} ({exc.strerror}); pass a writable --out") from None
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the toys are many tiny full-batch steps: extra threads only add overhead
    try:
        t0 = time.perf_counter()
        result = rep.run(quick, out)
        result.seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    result.quick = quick
    if write:
        write_page(rep, result, out)
        write_index(out)
    return result


__all__ = ["DEFAULT_OUT", "REPRODUCTIONS", "Reproduction", "Result", "get_reproduction", "register_reproduction",
           "reproduce"]

# the built-in reproductions (each module registers itself)
from benchmark.reproduce import pilot_diagonal as _pilot_diagonal  # noqa: E402,F401
from benchmark.reproduce import ham_regression as _ham_regression  # noqa: E402,F401
from benchmark.reproduce import signin_neuron as _signin_neuron  # noqa: E402,F401
from benchmark.reproduce import never_saddle as _never_saddle  # noqa: E402,F401
from benchmark.reproduce import mirror_wd_off as _mirror_wd_off  # noqa: E402,F401
from benchmark.reproduce import nanoadam_toy as _nanoadam_toy  # noqa: E402,F401
from benchmark.reproduce import graphon_convergence as _graphon_convergence  # noqa: E402,F401
from benchmark.reproduce import graphon_ntk as _graphon_ntk  # noqa: E402,F401
from benchmark.reproduce import synflow_collapse as _synflow_collapse  # noqa: E402,F401
from benchmark.reproduce import signin_ham_table as _signin_ham_table  # noqa: E402,F401
