"""Test-only pruner plugin (tests/benchmark/test_faults.py, test_executors.py): magnitude scores, or a
fault chosen by ``mode``; loaded by workers through $SPARSEBENCH_PLUGINS."""
import os
import time
from dataclasses import dataclass

import torch

from pruners import PRUNERS, register_pruner
from pruners.basic import Magnitude

if "test-faulty" not in PRUNERS:
    @register_pruner("test-faulty")
    @dataclass
    class Faulty(Magnitude):
        mode: str = "none"
        marker: str = ""

        def scores(self, model, ctx):
            if self.mode == "exit" and self.marker and os.path.exists(self.marker):
                os._exit(3)
            if self.mode == "raise":
                raise ValueError("scores exploded on purpose")
            if self.mode == "oom":
                raise MemoryError()
            if self.mode == "oom-torch":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            if self.mode == "sleep":
                time.sleep(600)
            return super().scores(model, ctx)
