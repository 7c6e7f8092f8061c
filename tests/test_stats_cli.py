"""``consortia stats`` against real party-agent processes over ZeroMQ with CURVE."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flows.processes import PartyProcesses
from tests.federation_helpers import make_federation, run_consortia

pytestmark = pytest.mark.integration


def test_consortia_stats_prints_pooled_figures_and_shows_suppression(tmp_path):
    workspace, layout = make_federation(tmp_path / "ws", parties=3, rounds=1)
    small = layout.party_data["gamma"]
    pd.read_csv(small).head(7).to_csv(small, index=False)
    with PartyProcesses(layout.party_configs, workspace.logs):
        done = run_consortia("stats", str(layout.federation_config), "--bins", "5", workspace=workspace.root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "suppressed at gamma (< 10): 30 of 30 features" in done.stdout and "mean_radius" in done.stdout
    report = json.loads((workspace.root / "stats" / "breast_cancer-v1.json").read_text())
    pooled_rows = pd.concat(pd.read_csv(layout.party_data[name]) for name in ("alpha", "beta"))
    radius = report["features"]["mean_radius"]
    assert radius["pooled"]["count"] == len(pooled_rows) and len(radius["pooled"]["histogram"]) == 5
    assert radius["pooled"]["mean"] == pytest.approx(pooled_rows["mean_radius"].mean(), rel=1e-12)
