"""The local executor: a process pool on this machine, one run per worker.

torch's intra-op threads are split between workers (``cores // workers`` each) so that two workers
on two cores do not oversubscribe the CPU.  With one worker the runs execute in this process (no
start-up cost).  Workers use the ``spawn`` start method: forking a process that already ran torch's
OpenMP thread pool can deadlock.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from pathlib import Path
from typing import Iterator

import torch

from benchmark.executors.base import EXECUTORS, Executor
from benchmark.spec import RunSpec


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _execute(spec_dict: dict, out: str, device: str, grid: str) -> dict:
    from benchmark.runner import execute

    return execute(RunSpec.from_dict(spec_dict), out, device=device, grid=grid)


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    def __init__(self, workers: int = 1, device: str = "cpu") -> None:
        self.workers = max(1, int(workers))
        self.device = device

    def run(self, specs: list[RunSpec], out: Path, grid: str) -> Iterator[dict]:
        if not specs:
            return
        if self.workers == 1 or len(specs) == 1:
            from benchmark.runner import execute

            torch.set_num_threads(threads_per_worker(1))
            for spec in specs:
                yield execute(spec, out, device=self.device, grid=grid)
            return
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(self.workers, len(specs)), mp_context=ctx,
                                    initializer=_init_worker,
                                    initargs=(threads_per_worker(self.workers),)) as pool:
            futures = [pool.submit(_execute, s.to_dict(), str(out), self.device, grid) for s in specs]
            for fut in cf.as_completed(futures):
                yield fut.result()
