"""Make the package importable without installing it, and register the pruner the way sparsebench does.

Installed (``pip install -e examples/plugin-example``), the pruner comes from the entry point; from a
plain checkout, ``src`` is put on ``sys.path`` and the module is loaded as a ``--plugin`` target.
"""
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="session", autouse=True)
def force_registered():
    from pruners import PRUNERS, plugins

    if "force" not in PRUNERS:  # not installed: load it as sparsebench's --plugin would
        if str(SRC) not in sys.path:
            sys.path.insert(0, str(SRC))
        plugins.load_plugins(["sparsebench_force.force"], export_env=False)
    return PRUNERS.get("force")
