"""Side-by-side timing: interleaved repetitions after a warm-up, reported as ratios.

Differences of a few percent need many interleaved repetitions and a warm-up; without one, early
steps distort ratios by tens of percent (DESIGN.md).  :func:`interleaved` runs every variant's
step function for ``warmup`` steps, then ``reps`` rounds in which each variant runs ``inner`` steps
back to back (the order rotating every round), and returns each variant's per-step times.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping


def interleaved(variants: Mapping[str, Callable[[], None]], warmup: int = 30, reps: int = 15,
                inner: int = 10, sync: Callable[[], None] | None = None,
                clock: Callable[[], float] | None = None) -> dict[str, list[float]]:
    """Per-step times of every variant (see the module docstring).

    ``clock`` defaults to :func:`time.perf_counter` (wall time); :func:`time.process_time` (CPU time of
    this process, all threads) is steadier on a machine shared with other jobs, since time spent
    descheduled does not count (cache and memory-bandwidth contention still do).
    """
    clock = clock or time.perf_counter
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    if sync:
        sync()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn = variants[name]
            t0 = clock()
            for _ in range(inner):
                fn()
            if sync:
                sync()
            times[name].append((clock() - t0) / inner)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def ratio(times: Mapping[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of the per-round ratio (robust to slow drifts of the machine)."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def machine() -> str:
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}; {os.cpu_count()} logical CPUs; torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads; Python {platform.python_version()}")


# The clock of every section: set once by ``python -m benchmark.perf --clock`` (default: wall time on a
# quiet machine, CPU time when the 1-minute load average says other jobs share the cores).
_CLOCK = {"name": "wall"}
QUIET_LOAD = 2.5


def load_average() -> float:
    import os

    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def set_clock(name: str) -> str:
    """``wall`` (time.perf_counter), ``cpu`` (time.process_time) or ``auto`` (cpu when loaded)."""
    if name == "auto":
        name = "wall" if load_average() < QUIET_LOAD else "cpu"
    if name not in ("wall", "cpu"):
        raise ValueError(f"clock must be wall, cpu or auto, got {name!r}")
    _CLOCK["name"] = name
    return name


def clock() -> Callable[[], float]:
    return time.perf_counter if _CLOCK["name"] == "wall" else time.process_time


def clock_name() -> str:
    return ("wall-clock time" if _CLOCK["name"] == "wall"
            else "CPU time of the process (time.process_time), since the machine was shared")
