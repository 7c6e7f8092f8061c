"""The recorder over twins: what a resumed run writes again."""

from pathlib import Path

from components.adapters.contracts import load_contract
from components.adapters.workspace import Workspace
from components.core.config import FederationConfig
from components.run.recorder import RunRecorder
from components.run.summary import RoundMetrics, RoundRow
from components.twins.store import MemoryStore
from components.twins.tracking import MemoryTracker
from components.twins.versioning import MemoryMetadata
from tests.test_config_validation import federation


def row(number: int) -> RoundRow:
    metrics = RoundMetrics(loss=1.0 / number, accuracy=0.5 + number / 10)
    return RoundRow(round=number, participants=["alpha"], metrics=metrics, bytes_up=10, bytes_down=20, seconds=0.1)


def test_resume_logs_again_the_rounds_whose_queued_metrics_were_lost(tmp_path: Path):
    config = FederationConfig.model_validate(federation())
    contract = load_contract(config.contract.name, config.contract.version)
    workspace, tracker, store = Workspace.at(tmp_path), MemoryTracker(), MemoryStore()
    metadata = MemoryMetadata(workspace.metadata_repo)
    first = RunRecorder("run-1", config, workspace, tracker, store, metadata)
    first.start(contract)
    first.round(row(1))
    first.round(row(2))
    metrics = tracker.metrics
    del metrics[2]  # queued for MLflow when the coordinator died: never stored
    metrics[1]["accuracy"] = -1.0  # stored: must not be written again

    resumed = RunRecorder("run-1", config, workspace, tracker, store, metadata)
    resumed.start(contract)

    assert sorted(metrics) == [1, 2]
    assert metrics[1]["accuracy"] == -1.0
    assert metrics[2]["accuracy"] == 0.7 and metrics[2]["round_seconds"] == 0.1
