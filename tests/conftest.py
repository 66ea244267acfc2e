"""Generic test fixtures shared by all test packages."""
from __future__ import annotations

import pytest
import torch


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
