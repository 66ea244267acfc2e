"""docs/tasks.md lists every built-in task (a task added to the catalog without its row fails here)."""
from __future__ import annotations

from pathlib import Path

from benchmark.tasks.base import TASKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "tasks.md"


def test_every_registered_task_has_a_row_in_docs_tasks_md():
    text = DOC.read_text()
    missing = [name for name in TASKS.names() if f"| `{name}` |" not in text]
    assert not missing, f"docs/tasks.md has no row for {missing}"
