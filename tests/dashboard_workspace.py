"""A workspace made by a real small federation run, shared by the dashboard's AppTest and browser tests.

``python -m flows demo`` (2 parties, 2 rounds) runs once per test session: the workspace lives in the
session's base temporary folder and a marker file says it finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.run import lineage
from components.run.lineage import ModelCard
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


def hand_made_card(**fields: Any) -> ModelCard:
    """A small model card of run ``run-small`` (parties a and b); ``fields`` replace its values."""
    values = dict(
        model_name="clinics-model",
        run_id="run-small",
        federation="clinics",
        task="binary",
        model={"kind": "mlp"},
        strategy={"name": "fedavg", "options": {}},
        training={"local_epochs": 1},
        rounds_planned=2,
        rounds_completed=2,
        parties=["a", "b"],
        contract=lineage.ContractCard(name="clinic", version=2, content_hash="sha256:00ff"),
        data=[
            lineage.PartyData(party="a", manifest_sha256="sha-a", rows_claimed=120, rows_validated=120),
            lineage.PartyData(party="b", manifest_sha256="sha-b", rows_claimed=80, rows_validated=80),
        ],
        metrics={"accuracy": 0.8},
        metrics_source="the coordinator's holdout",
        valuation_method="tmc_shapley",
        contributions={"a": 0.03, "b": 0.01},
        rewards={"a": 60.0, "b": 40.0},
        privacy=lineage.PrivacyCard(),
        lineage={lineage.CONFIG_SHA256: "c0ffee" * 10},
    )
    return ModelCard(**(values | fields))
