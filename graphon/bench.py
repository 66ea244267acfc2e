"""Timing of the graphon analyser (``python -m graphon.bench``; called by ``make bench``).

Prints the median time of :func:`graphon.estimate.estimate` on Erdős–Rényi masks of side n = 512 … 4096
(with the fitted scaling exponent in n), and of :func:`graphon.ntk.graphon_ntk` for 512 samples, K = 64,
4 hidden layers, on this machine's torch threads.  No assertions: timings depend on the machine.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from graphon.estimate import estimate
from graphon.ntk import graphon_ntk


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    """Print the benchmark table."""
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    sizes = [512, 1024, 2048, 4096]
    times = []
    for n in sizes:
        mask = torch.rand(n, n, generator=gen) < 0.2
        t = _median_time(lambda: estimate(mask, 64), repeats=7)
        times.append(t)
        print(f"estimate  n={n:5d} x {n:5d}  K=64  {t * 1e3:8.2f} ms")
    slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
    print(f"estimate  time ~ n^{slope:.2f} (n x n masks; linear in entries is n^2)")
    x = torch.randn(512, 784, generator=gen, dtype=torch.float64)
    rng = np.random.default_rng(0)
    graphons = [rng.random((64, 64)) for _ in range(4)]
    t = _median_time(lambda: graphon_ntk(graphons, x), repeats=3)
    print(f"graphon_ntk  512 samples, d=784, K=64, 4 hidden layers  {t:6.3f} s")


if __name__ == "__main__":
    main()
