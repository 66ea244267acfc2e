"""Each built-in preset gives exactly the masks and metrics it gave before the schedule axis (issue 19):
the stored runs of tests/pruners/data/preset_runs.json (written by tests/pruners/preset_runs.py with the
code of the commit before the schedules were factored out) against a fresh run of each."""
from __future__ import annotations

import json

import pytest

from preset_runs import CASES, DATA, fingerprint

STORED = json.loads(DATA.read_text())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_preset_equals_its_stored_run(case, tmp_path):
    """Masks (final and every ticket), run id, status, top-1 and sparsity exactly; the test loss to float32
    rounding (1e-6 relative), since its summation order follows the process's intra-op thread count
    (pytest -n 2 runs with fewer threads than the run that stored it)."""
    got, stored = fingerprint(case, tmp_path), dict(STORED[case[0]])
    assert got.pop("final_test_loss") == pytest.approx(stored.pop("final_test_loss"), rel=1e-6)
    assert got == stored
