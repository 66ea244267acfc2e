"""Fixtures shared by the harness tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from pruners.plugins import ENV_VAR, load_plugins

FAULTY = Path(__file__).with_name("faulty_plugin.py")


@pytest.fixture
def faulty(monkeypatch):
    """The test-only plugin whose pruners fail on purpose (worker death, raise, OOM, hang), loaded in
    the driver and handed to workers through the environment."""
    monkeypatch.setenv(ENV_VAR, str(FAULTY))
    load_plugins([str(FAULTY)])
    return FAULTY

