"""Differential privacy in a real run: epsilon per round, and a dataset's budget stops training in time."""

from __future__ import annotations

import json

import pytest
import yaml

from flows.processes import PartyProcesses
from tests.federation_helpers import make_federation, run_consortia

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
DP = {"name": "dp", "options": {"inner": "fedavg", "clip_norm": 5.0, "noise_multiplier": 1.0}}


def test_budget_stops_training_before_the_round_that_would_exceed_it(tmp_path):
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=5, min_parties=2, strategy=DP)
    for config in layout.party_configs.values():  # each data owner allows epsilon 8 at delta 1e-5
        party = yaml.safe_load(config.read_text())
        party["privacy_budget"] = {"epsilon": 8.0, "delta": 1e-5}
        config.write_text(yaml.safe_dump(party))
    with PartyProcesses(layout.party_configs, workspace.logs):
        done = run_consortia("run", str(layout.federation_config), "--run-id", "private", workspace=workspace.root)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(workspace.summary_path("private").read_text())
    epsilons = [row["epsilon"] for row in summary["rounds"]]
    assert len(epsilons) == 2  # opacus RDP, z=1, q=1: 4.73 after round 1, 7.08 after 2, 9.01 after 3 > 8
    assert epsilons == pytest.approx([4.7285, 7.0774], abs=1e-3)
    assert "round 3 would bring epsilon to 9.010" in summary["stopped_early"]
    assert summary["promotion"]["decision"] == "promoted"
    assert "stopped early" in done.stdout
