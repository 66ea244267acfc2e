"""Timing of the graphon analyser (``python -m graphon.bench``; ``section()`` for the perf harness).

Measures the median time of :func:`graphon.estimate.estimate` on Erdős–Rényi masks of side n (K = 64) and of
:func:`graphon.ntk.graphon_ntk` (d = 784, K = 64, 4 hidden layers) for n samples, with the fitted scaling
exponents in n.  Targets (docs/graphon.md): a 4096 × 4096 mask in ≤ 0.1 s; the NTK of 512 samples in ≤ 2 s.
No assertions: timings depend on the machine and its load.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from graphon.estimate import estimate
from graphon.ntk import graphon_ntk

ESTIMATE_TARGET_S = 0.1    # 4096 x 4096 mask, K = 64
NTK_TARGET_S = 2.0         # 512 samples, d = 784, K = 64, 4 hidden layers


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(quick: bool = False) -> dict[str, object]:
    """Timings as a dict: ``estimate`` {n: s}, ``estimate_exponent``, ``ntk`` {n: s}, ``ntk_exponent``.

    ``quick`` uses fewer sizes and repeats (a smoke run for CI); the 4096 mask and 512-sample NTK are
    always measured, since they are the targets.
    """
    gen = torch.Generator().manual_seed(0)
    sizes = [1024, 4096] if quick else [512, 1024, 2048, 4096]
    est: dict[int, float] = {}
    for n in sizes:
        mask = torch.rand(n, n, generator=gen) < 0.2
        est[n] = _median_time(lambda: estimate(mask, 64), repeats=3 if quick else 7)
    rng = np.random.default_rng(0)
    graphons = [rng.random((64, 64)) for _ in range(4)]
    ntk_sizes = [256, 512] if quick else [128, 256, 512]
    ntk: dict[int, float] = {}
    for n in ntk_sizes:
        x = torch.randn(n, 784, generator=gen, dtype=torch.float64)
        ntk[n] = _median_time(lambda: graphon_ntk(graphons, x), repeats=1 if quick else 3)

    def slope(d: dict[int, float]) -> float:
        ks = sorted(d)
        return float(np.polyfit(np.log(ks), np.log([d[k] for k in ks]), 1)[0])

    return {"threads": torch.get_num_threads(), "torch": torch.__version__, "estimate": est,
            "estimate_exponent": slope(est), "ntk": ntk, "ntk_exponent": slope(ntk)}


def section(quick: bool = False, threads: int | None = None) -> str:
    """A Markdown section with the graphon analyser's timings (for the lead's perf harness).

    ``threads`` sets torch's intra-op threads for the measurement (restored afterwards; default: leave
    them).  On an oversubscribed machine use 1: with 2 threads competing for busy cores, OpenMP barriers
    made the NTK here ~100× slower (242 s instead of ~2 s for 512 samples).
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        m = measure(quick)
    finally:
        torch.set_num_threads(before)
    est, ntk = m["estimate"], m["ntk"]
    assert isinstance(est, dict) and isinstance(ntk, dict)
    e4096, n512 = est[4096], ntk[512]
    ok = lambda t, target: "meets" if t <= target else "misses"  # noqa: E731
    lines = [
        "## Graphon analyser",
        "",
        f"torch {m['torch']}, {m['threads']} threads; median of repeated calls after a warm-up "
        f"({'quick' if quick else 'full'} run of `graphon.bench.section`).",
        "",
        "| operation | size | time |",
        "|---|---|---|",
        *[f"| `estimate` (SAS, K = 64), Erdős–Rényi p = 0.2 | {n} × {n} | {t * 1e3:.1f} ms |" for n, t in est.items()],
        *[f"| `graphon_ntk` (d = 784, K = 64, 4 hidden layers) | {n} samples | {t:.3f} s |" for n, t in ntk.items()],
        "",
        f"* Estimate of a 4096 × 4096 mask: {e4096 * 1e3:.1f} ms — {ok(e4096, ESTIMATE_TARGET_S)} the "
        f"{ESTIMATE_TARGET_S * 1e3:.0f} ms target.  Scaling: time ∝ n^{m['estimate_exponent']:.2f} for n × n masks "
        "(linear in the number of entries would be n^2).",
        f"* Graphon NTK of 512 samples: {n512:.3f} s — {ok(n512, NTK_TARGET_S)} the {NTK_TARGET_S:.0f} s target.  "
        f"Scaling: time ∝ n^{m['ntk_exponent']:.2f} in the number of samples (the cost model is "
        "O(L·K·n² + L·K²·n²), i.e. n^2).",
        "* Timings on a shared, loaded machine are several times the quiet-machine values in docs/graphon.md.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Print the benchmark section."""
    print(section())


if __name__ == "__main__":
    main()
