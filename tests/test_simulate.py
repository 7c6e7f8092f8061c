"""``consortia simulate``: 50 party agents in a few processes, real CURVE sockets, the real run, 2 rounds."""

from __future__ import annotations

import json

import pytest

from components.adapters.checkpoints import RunCheckpoints
from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.run.summary import RunSummary
from flows.simulation import SimulationReport
from tests.federation_helpers import run_consortia

pytestmark = pytest.mark.integration
PARTIES = 50


@pytest.mark.timeout(900)  # a coordinator, 50 parties in 2 processes and a Prefect flow on 2 shared cores
def test_fifty_simulated_parties_train_two_rounds_each_on_its_own_rows(tmp_path, prefect_server):
    workspace = tmp_path / "ws"
    report_path = tmp_path / "report.json"
    done = run_consortia(
        "simulate",
        "--parties",
        str(PARTIES),
        "--rounds",
        "2",
        "--processes",
        "2",
        "--report",
        str(report_path),
        workspace=workspace,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "round 2: 50 parties" in done.stdout
    report = SimulationReport.model_validate_json(report_path.read_text())
    assert report.status == "completed"
    assert [(r.round, r.participants) for r in report.rounds] == [(2, PARTIES)]  # round 1 carries the start-up
    measured = report.rounds[0]
    # at least a request and an update per party went through the coordinator's ROUTER in round 2
    assert measured.messages_in >= PARTIES and measured.messages_out >= PARTIES
    assert measured.peak_rss_mb > 0 and measured.messages_per_s > 0
    space = Workspace.at(workspace)
    summary = RunSummary.read(space.summary_path(report.run_id))
    config = load_federation_config(space.root / "federation.yaml")
    # fifty distinct parties: fifty keys admitted, fifty validations, fifty different partitions (manifests)
    assert len({p.public_key for p in config.parties}) == PARTIES
    assert len(summary.validation) == PARTIES and all(v["success"] for v in summary.validation.values())
    assert len(set(summary.manifests.values())) == PARTIES
    assert [len(row.participants) for row in summary.rounds] == [PARTIES, PARTIES]
    # FedAvg streamed: no per-party update was kept, and valuation says why it has nothing to value
    assert not (RunCheckpoints(space.checkpoints, report.run_id).folder / "updates").exists()
    assert summary.valuation_method.startswith("none: party_updates is 'none'")
    assert json.loads(report_path.read_text())["parameters"] == report.parameters > 9_000
