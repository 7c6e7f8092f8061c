"""``consortia sweep`` and ``consortia reproduce`` for real: party processes, CURVE sockets, a Prefect flow with
subflows, MLflow parent and child runs, the registry, DVC.

One module fixture runs a sweep of 8 configurations on a 2-party demo federation (every other one fails at
once: a wrong input shape), then a weaker run, then a reproduction of the champion; the tests read what they left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from components.core.sweep import SweepConfig
from components.run.reproduction import Reproduction
from components.run.summary import RunSummary
from components.run.sweep import SweepSummary
from flows.processes import PartyProcesses
from tests.federation_helpers import make_federation, run_consortia

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server"), pytest.mark.timeout(1200)]
MODEL = "consortia-breast-cancer"
SWEEP = {
    "base": "federation.yaml",
    "search": "grid",
    "parameters": {
        "training.learning_rate": [0.002, 0.05],
        "rounds": [1, 2],
        "model.input_shape": [None, [7]],  # [7] does not fit 30 features: every other trial fails before training
    },
    "metric": "accuracy",
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-ws")
    workspace, layout = make_federation(
        root, parties=2, rounds=1, training={"batch_size": 64}, join_timeout_s=60, round_timeout_s=30
    )
    sweep_file = layout.federation_config.with_name("sweep.yaml")
    sweep_file.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    weaker = yaml.safe_load(layout.federation_config.read_text())
    weaker["training"]["learning_rate"] = 0.0005
    weaker_file = layout.federation_config.with_name("weaker.yaml")
    weaker_file.write_text(yaml.safe_dump(weaker, sort_keys=False))
    with PartyProcesses(layout.party_configs, workspace.logs):
        sweep = run_consortia("sweep", str(sweep_file), workspace=root, timeout=900)
        assert sweep.returncode == 0, sweep.stdout + sweep.stderr
        worse = run_consortia("run", str(weaker_file), "--run-id", "weaker-run", workspace=root)
        assert worse.returncode == 0, worse.stdout + worse.stderr
        reproduce = run_consortia("reproduce", f"{MODEL}@champion", workspace=root, timeout=600)
    (record,) = (workspace.root / "sweeps").glob("*.json")
    return workspace, SweepSummary.read(record), sweep, worse, reproduce


def test_the_sweep_runs_every_trial_reports_failures_and_elects_the_best(swept):
    workspace, summary, sweep, *_ = swept
    assert len(summary.trials) == len(SweepConfig.model_validate(SWEEP).trials_overrides()) == 8
    completed = [t for t in summary.trials if t.status == "completed"]
    failed = [t for t in summary.trials if t.status == "failed"]
    assert len(completed) == 4 and all(t.overrides["model.input_shape"] is None for t in completed)
    assert len(failed) == 4 and all("input_shape" in (t.error or "") for t in failed)
    best = max(completed, key=lambda t: t.metrics["accuracy"])  # the first among equals, as the sweep elects
    best = next(t for t in completed if t.metrics["accuracy"] == best.metrics["accuracy"])
    assert summary.status == "completed" and summary.elected == best.run_id
    for trial in summary.trials:  # a progress line as each trial ended, failures included
        line = next(row for row in sweep.stdout.splitlines() if row.startswith(f"trial {trial.index}/8 "))
        assert ("failed" in line) == (trial.status == "failed")
        if trial.status == "completed":
            assert f"accuracy {trial.metrics['accuracy']:.4f}" in line
    assert f"elected {best.run_id}" in sweep.stdout.replace("\n", "")


def test_trials_are_mlflow_child_runs_of_one_parent_and_only_the_elected_is_registered(swept):
    workspace, summary, *_ = swept
    import mlflow

    client = mlflow.MlflowClient(workspace.tracking_uri)
    parent = client.get_run(summary.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep.elected"] == summary.elected
    assert parent.data.tags["promotion.decision"] == "promoted"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    completed = {t.run_id for t in summary.trials if t.status == "completed"}
    assert {run.info.run_name for run in children} == completed  # failed trials never opened a run
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["promotion.decision"] == "deferred"
        trial = next(t for t in summary.trials if t.run_id == run.info.run_name)
        assert run.data.metrics["accuracy"] == pytest.approx(trial.metrics["accuracy"])
        assert run.data.tags["sweep.training.learning_rate"] == str(trial.overrides["training.learning_rate"])
    history = client.get_metric_history(parent.info.run_id, "best_accuracy")
    assert [m.step for m in history] == list(range(1, 9))  # the best so far, after every trial
    elected = [
        v
        for v in client.search_model_versions(f"name = '{MODEL}'")
        if v.tags.get("consortia.run_id") == summary.elected
    ]
    assert len(elected) == 1 and int(elected[0].version) == 1  # the sweep registered one version: the elected one
    assert elected[0].run_id == next(r.info.run_id for r in children if r.info.run_name == summary.elected)
    assert summary.promotion.decision == "promoted" and summary.promotion.version == 1
    assert RunSummary.read(workspace.summary_path(summary.elected)).promotion.decision == "promoted"


def test_a_worse_run_after_the_sweep_leaves_the_champion_and_says_why(swept):
    workspace, summary, _, worse, _ = swept
    run = RunSummary.read(workspace.summary_path("weaker-run"))
    best = next(t for t in summary.trials if t.run_id == summary.elected)
    assert run.final_metrics.accuracy < best.metrics["accuracy"]
    assert run.promotion.decision == "kept"
    assert (run.promotion.version, run.promotion.champion_version) == (2, 1)
    assert "champion kept" in run.promotion.reason and "kept" in worse.stdout
    import mlflow

    client = mlflow.MlflowClient(workspace.tracking_uri)
    assert int(client.get_model_version_by_alias(MODEL, "champion").version) == 1
    assert client.get_run(run.mlflow_run_id).data.tags["promotion.reason"] == run.promotion.reason


def test_reproducing_the_champion_gives_the_same_model_and_metrics(swept):
    workspace, summary, *_, reproduce = swept
    assert reproduce.returncode == 0, reproduce.stdout + reproduce.stderr
    (path,) = (workspace.root / "reproductions").glob("*.json")
    report = Reproduction.model_validate(json.loads(path.read_text()))
    assert report.recorded_run == summary.elected and report.version == 1
    assert report.mismatches == []
    assert report.parameters_max_difference <= 1e-6 and report.rounds_max_difference <= 1e-6
    assert set(report.final_metrics) == {"accuracy", "roc_auc", "loss"}
    assert all(match.difference <= 1e-6 for match in report.final_metrics.values())
    print(
        f"reproduction: parameters differ by {report.parameters_max_difference:.3g}, final metrics by "
        f"{max(m.difference for m in report.final_metrics.values()):.3g}"
    )  # measured (README)
    assert "reproduced" in reproduce.stdout
    rerun = RunSummary.read(workspace.summary_path(report.rerun))
    assert rerun.promotion.decision == "deferred"  # a reproduction registers nothing
    import mlflow

    versions = mlflow.MlflowClient(workspace.tracking_uri).search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 2  # the sweep's and the weaker run's


def test_prefect_recorded_one_sweep_flow_with_a_subflow_per_trial(swept):
    workspace, summary, *_ = swept
    script = f"""
import asyncio, json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterParentFlowRunId

async def main():
    async with get_client() as client:
        named = FlowRunFilter(name=FlowRunFilterName(any_=[{summary.sweep_id!r}]))
        (sweep,) = await client.read_flow_runs(flow_run_filter=named)
        trials = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[sweep.id])))
        print(json.dumps({{"sweep": sweep.state.type.value, "trials": {{t.name: t.state.type.value for t in trials}}}}))
asyncio.run(main())
"""
    env = {**os.environ, "PREFECT_HOME": str(workspace.prefect_home)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["sweep"] == "COMPLETED"
    assert record["trials"] == {t.run_id: "COMPLETED" if t.status == "completed" else "FAILED" for t in summary.trials}
