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
    assert fingerprint(case, tmp_path) == STORED[case[0]]
