"""Fixtures shared by the harness tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.executors.base import IMPORTS_ENV, load_worker_imports

FAULTY = Path(__file__).with_name("faulty_plugin.py")


@pytest.fixture
def faulty(monkeypatch):
    """The test-only plugin whose pruners fail on purpose (worker death, raise, OOM, hang), loaded in
    the driver and handed to workers through the environment."""
    monkeypatch.setenv(IMPORTS_ENV, str(FAULTY))
    load_worker_imports([str(FAULTY)])
    return FAULTY

