"""The executor interface shared by the local, Ray and Slurm executors (DESIGN.md, "Executors").

An executor only decides *where* runs execute.  It receives pending specs and yields result records
as runs finish; the driver (``benchmark.driver``) alone writes the store.  Every executor runs
:func:`benchmark.runner.execute`, so all of them write the same run folders and resume the same way.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

from benchmark.spec import RunSpec
from pruners.registry import Registry

EXECUTORS: Registry[type["Executor"]] = Registry("executor")


class Executor(ABC):
    """Runs specs somewhere and yields their result records as they finish."""

    @abstractmethod
    def run(self, specs: list[RunSpec], out: Path, grid: str) -> Iterator[dict]:
        """Execute ``specs`` writing run folders under ``out``; yield one record per spec."""
