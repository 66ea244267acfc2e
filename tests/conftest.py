"""Generic test fixtures shared by all test packages."""
from __future__ import annotations

import sys

import pytest
import torch

from pruners import plugins
from pruners.registry import REGISTRIES


@pytest.fixture
def seeded() -> int:
    """Seed torch's global RNG with 0 for the test and return the seed."""
    torch.manual_seed(0)
    return 0


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """An empty data root: ``$SPARSEBENCH_DATA`` points to a fresh temporary folder."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("SPARSEBENCH_DATA", str(root))
    return root


@pytest.fixture(autouse=True)
def isolated_plugins(monkeypatch):
    """Every test (in every package) starts and ends with the built-in registries, no loaded plugin and no $SPARSEBENCH_PLUGINS."""
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    saved = [(r, dict(r._entries), dict(r._origins), r._discovered) for r in REGISTRIES]
    loaded = dict(plugins._LOADED)
    modules = set(sys.modules)
    yield
    for r, entries, origins, discovered in saved:
        r._entries.clear(), r._entries.update(entries)
        r._origins.clear(), r._origins.update(origins)
        r._discovered = discovered
    plugins._LOADED.clear(), plugins._LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        if name.startswith(("sparsebench_plugin_", "sparsebench_force", "plugpkg")):
            sys.modules.pop(name, None)




@pytest.fixture(autouse=True)
def checkpoint_every_epoch(monkeypatch):
    """Tests of resuming need a checkpoint after every epoch (the default waits 10 s between them)."""
    monkeypatch.setenv("SPARSEBENCH_CHECKPOINT_EVERY", "0")
