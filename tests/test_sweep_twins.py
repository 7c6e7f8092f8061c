"""A sweep over the edges' twins, in one process: real party agents on threads, real runs, one election."""

from __future__ import annotations

import yaml

from components.core.sweep import load_sweep_config
from components.run.summary import RunSummary
from components.run.sweep import Sweep
from components.twins.tracking import MemoryTracker
from flows.sweep import PLAIN_TRIAL_STEPS, drive_sweep, run_trial
from tests.run_twins import twin_federation, twin_parties


def test_a_sweep_goes_on_after_a_failed_trial_and_promotes_only_the_best(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=2, rounds=1, round_timeout_s=60, join_timeout_s=30)
    sweep_file = federation.config_path.with_name("sweep.yaml")
    parameters = {"model.input_shape": [[7], None], "training.learning_rate": [0.0005, 0.05]}
    sweep_file.write_text(yaml.safe_dump({"base": "federation.yaml", "parameters": parameters}))
    parent = MemoryTracker()
    sweep = Sweep("sw", load_sweep_config(sweep_file), federation.workspace, parent, federation.edges.registry)
    seen = []

    def trial_runner(trial):
        return run_trial(trial, federation.workspace, sweep.child_tags(trial), PLAIN_TRIAL_STEPS, federation.edges)

    with twin_parties(federation):
        path = drive_sweep(sweep, trial_runner, lambda result, state: seen.append((result.index, result.status)))
    assert seen == [(1, "failed"), (2, "failed"), (3, "completed"), (4, "completed")]
    record = sweep.summary
    assert path == sweep.path and record.status == "completed"
    slow, fast = record.trials[2], record.trials[3]
    assert slow.metrics["accuracy"] < fast.metrics["accuracy"] and record.elected == fast.run_id
    assert "input_shape [7] holds 7 values per row" in record.trials[0].error
    registry = federation.edges.registry
    (version,) = registry.versions("consortia-breast-cancer")  # one registration: the elected trial's
    assert version.tags["consortia.run_id"] == fast.run_id and sorted(version.aliases) == ["challenger", "champion"]
    children = federation.tracker.runs
    assert {run.tags["mlflow.parentRunId"] for run in children.values()} == {record.mlflow_run_id}
    assert sorted(run.tags["promotion.decision"] for run in children.values()) == ["deferred", "deferred"]
    assert parent.status == "FINISHED" and parent.tags["sweep.elected"] == fast.run_id
    assert sorted(parent.metrics) == [1, 2, 3, 4] and "best_accuracy" in parent.metrics[3]
    assert RunSummary.read(federation.workspace.summary_path(slow.run_id)).promotion.decision == "deferred"
    assert RunSummary.read(federation.workspace.summary_path(fast.run_id)).promotion.decision == "promoted"
