"""A real 2-party, 2-round federation: party processes, CURVE sockets, Prefect flow, MLflow, DVC, GE.

One run (plus a second, weaker one) feeds several assertions: the summary, the registered
champion, the Prefect database, and the party's audit trail of every byte it sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.adapters.workspace import Workspace
from components.core.config import dump_yaml, load_federation_config
from components.run.summary import RunSummary
from flows.demo import prepare_demo
from flows.processes import PartyProcesses
from party_agent.audit import verify
from party_agent.wire_capture import WireCapture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
CANARIES = {"mean_radius": 123.456789, "mean_texture": 98.7654321, "worst_area": 4321.98765}


def _consortia(*args: str, workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_HOME": str(workspace / "prefect")}
    return subprocess.run(
        [sys.executable, "-m", "flows", *args, "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _plant_canary(csv_path: Path) -> pd.DataFrame:
    frame = pd.read_csv(csv_path)
    for column, value in CANARIES.items():
        frame.loc[0, column] = value
    frame.to_csv(csv_path, index=False)
    return frame


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    workspace = Workspace.at(root)
    layout = prepare_demo(workspace, parties=2, rounds=2, seed=1)
    config = load_federation_config(layout.federation_config)
    config.valuation.method = "exact"  # value with exact Shapley instead of the default leave-one-out
    dump_yaml(config, layout.federation_config)
    alpha_frame = _plant_canary(workspace.parties / "alpha" / "data" / "train.csv")
    with PartyProcesses(layout.party_configs, workspace.logs):
        first = _consortia("run", str(layout.federation_config), "--run-id", "first-run", workspace=root)
        assert first.returncode == 0, first.stdout + first.stderr
        # a weaker candidate: same federation, one round, a different initial model
        config_text = layout.federation_config.read_text().replace("rounds: 2", "rounds: 1")
        weaker = layout.federation_config.with_name("weaker.yaml")
        weaker.write_text(config_text.replace("seed: 1\n", "seed: 7\n", 1))
        second = _consortia("run", str(weaker), "--run-id", "second-run", workspace=root)
        assert second.returncode == 0, second.stdout + second.stderr
    return workspace, layout, alpha_frame, first, second


def test_summary_has_the_documented_shape(federation):
    workspace, _, _, first, _ = federation
    summary = RunSummary.read(workspace.summary_path("first-run"))
    assert summary.status == "completed"
    assert [r.round for r in summary.rounds] == [1, 2]
    assert all(sorted(r.participants) == ["alpha", "beta"] for r in summary.rounds)
    assert all(r.bytes_up > 0 and r.bytes_down > 0 for r in summary.rounds)
    assert summary.final_metrics.accuracy > 0.85
    assert set(summary.contributions) == {"alpha", "beta"}
    assert set(summary.manifests) == {"alpha", "beta"}
    assert summary.promotion.decision == "promoted" and summary.promotion.version == 1
    assert "final held-out accuracy" in first.stdout


def test_second_weaker_run_keeps_the_champion_and_says_why(federation):
    workspace, *_, second = federation
    first = RunSummary.read(workspace.summary_path("first-run"))
    summary = RunSummary.read(workspace.summary_path("second-run"))
    if summary.final_metrics.accuracy > first.final_metrics.accuracy:
        pytest.fail("the one-round candidate unexpectedly beat the two-round champion; pick another seed")
    assert summary.promotion.decision == "kept"
    assert (summary.promotion.version, summary.promotion.champion_version) == (2, 1)  # registered, and the champion
    assert "champion kept" in summary.promotion.reason
    assert "kept" in second.stdout


def test_contributions_rewards_and_reputation_agree_everywhere(federation):
    workspace, *_ = federation
    summary = RunSummary.read(workspace.summary_path("first-run"))
    assert summary.valuation_method.startswith("exact")
    report = summary.valuation
    assert sorted(report.rounds_valued + report.rounds_skipped) == [1, 2] and 1 in report.rounds_valued
    assert sorted(summary.round_contributions) == report.rounds_valued
    for party in ("alpha", "beta"):
        per_round = sum(summary.round_contributions[r][party] for r in report.rounds_valued)
        assert summary.contributions[party] == pytest.approx(per_round)
        assert report.errors[party] >= 0 and report.ranks[party] in (1, 2)
    assert sum(summary.rewards.values()) == pytest.approx(100.0)  # the default pool, all paid out
    assert min(summary.rewards.values()) >= 0.1 * 100.0 / 2  # the participation floor
    assert set(summary.model_rewards) == set(summary.reputation) == {"alpha", "beta"}
    assert all(0.0 < score <= 1.0 for score in summary.reputation.values())

    printed = _consortia("rewards", "first-run", workspace=workspace.root)
    assert printed.returncode == 0, printed.stdout + printed.stderr
    for party in ("alpha", "beta"):
        line = next(row for row in printed.stdout.splitlines() if f" {party} " in row)
        assert f"{summary.contributions[party]:+.4f}" in line and f"{summary.rewards[party]:.2f}" in line
        assert f"{summary.reputation[party]:.3f}" in line

    import mlflow

    metrics = mlflow.MlflowClient(workspace.tracking_uri).get_run(summary.mlflow_run_id).data.metrics
    for party in ("alpha", "beta"):
        assert metrics[f"contribution.{party}"] == pytest.approx(summary.contributions[party])
        assert metrics[f"reward.{party}"] == pytest.approx(summary.rewards[party])


def test_champion_loads_from_registry_and_predicts(federation):
    workspace, layout, *_ = federation
    import mlflow

    mlflow.set_tracking_uri(workspace.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/consortia-breast-cancer@champion")
    holdout = pd.read_csv(layout.holdout)
    features = holdout.drop(columns=["diagnosis"]).astype("float32")
    proba = np.asarray(model.predict(features))
    assert proba.shape == (len(holdout), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(axis=1) == holdout["diagnosis"].to_numpy()).mean() > 0.85
    assert model.metadata.signature is not None


def test_prefect_recorded_the_flow_and_task_runs(federation):
    workspace, *_ = federation
    script = """
import asyncio, json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

async def main():
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["first-run"])))
        tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [runs[0].id]}))
        print(json.dumps({"state": runs[0].state.type.value, "tasks": sorted(t.name for t in tasks),
                          "task_states": sorted({t.state.type.value for t in tasks})}))
asyncio.run(main())
"""
    env = {**os.environ, "PREFECT_HOME": str(workspace.prefect_home)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["state"] == "COMPLETED"
    assert record["task_states"] == ["COMPLETED"]
    names = record["tasks"]
    for step in ("validate-contracts", "initialise-model", "value-contributions", "promote-model"):
        assert any(n.startswith(step) for n in names), (step, names)
    assert sum(n.startswith("train-round") for n in names) == 2
    assert sum(n.startswith("evaluate-round") for n in names) == 2


def test_no_data_row_and_no_pickle_leaves_the_party(federation):
    workspace, _, alpha_frame, *_ = federation
    assert verify(workspace.parties / "alpha" / "audit.jsonl") == []  # the owner's log of it, chain intact
    messages = list(WireCapture.read(workspace.parties / "alpha" / "wire.bin"))
    kinds = [json.loads(frames[0])["kind"] for frames in messages]  # every header is a JSON envelope
    assert kinds.count("update") == 3 and "validation" in kinds and "profile_result" in kinds
    blob = b"".join(b"".join(frames) for frames in messages)
    for value in CANARIES.values():
        for needle in (np.float64(value).tobytes(), np.float32(value).tobytes(), repr(value).encode()):
            assert needle not in blob
    features = alpha_frame.drop(columns=["diagnosis"]).to_numpy()
    for row in features[:50]:
        assert row.astype(np.float32).tobytes() not in blob
        assert row.astype(np.float64).tobytes() not in blob
    for line in (workspace.parties / "alpha" / "data" / "train.csv").read_text().splitlines()[1:50]:
        assert line.encode() not in blob
    assert not any(frame[:2] in (b"\x80\x04", b"\x80\x05") for frames in messages for frame in frames)
