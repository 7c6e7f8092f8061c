"""A workspace made by a real small federation run, shared by the dashboard's AppTest and browser tests.

``python -m flows demo`` (2 parties, 2 rounds) runs once per test session: the workspace lives in the
session's base temporary folder and a marker file says it finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.run.summary import RunSummary


def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    """The demo run's workspace folder and its run summary."""
    root = tmp_path_factory.getbasetemp() / "dashboard-demo"
    done = root / "demo-finished"
    if not done.exists():
        env = {
            **os.environ,
            "PREFECT_HOME": str(root / "prefect"),
        }
        command = [sys.executable, "-m", "flows", "demo", "--workspace", str(root), "--parties", "2", "--rounds", "2"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        done.touch()
    (summary_path,) = (root / "runs").glob("*.json")
    return root, RunSummary.read(summary_path)
