"""A federation that survives the field: parties die and come back, the coordinator dies and resumes,
a registered party leaves. Real party processes, real sockets, the real CLI."""

from __future__ import annotations

import os
import signal
import sqlite3

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.adapters.checkpoints import RunCheckpoints, load_arrays
from components.run.summary import RunSummary
from flows.processes import PartyProcesses
from tests.federation_helpers import (
    make_federation,
    rounds_done,
    run_consortia,
    start_consortia,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
SLOW_ROUNDS = {"local_epochs": 150, "batch_size": 8, "learning_rate": 0.01, "momentum": 0.0}  # a kill lands mid-round
QUICK_ROUNDS = {**SLOW_ROUNDS, "local_epochs": 40}


def test_killed_party_is_dropped_and_rejoins_after_restart(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws",
        parties=4,
        rounds=24,
        min_parties=3,
        round_timeout_s=8,
        heartbeat_timeout_s=3,
        training=SLOW_ROUNDS,
    )
    with PartyProcesses(layout.party_configs, workspace.logs) as parties:
        coordinator = start_consortia(
            "run",
            str(layout.federation_config),
            "--run-id",
            "field",
            workspace=workspace.root,
            log=tmp_path / "coordinator.log",
        )
        wait_until(lambda: len(rounds_done(workspace, "field")) >= 2, 240, "two rounds")
        parties.processes["delta"].send_signal(signal.SIGKILL)  # mid-run, most likely mid-round
        killed_after = len(rounds_done(workspace, "field"))
        wait_until(lambda: len(rounds_done(workspace, "field")) >= killed_after + 2, 240, "rounds without delta")
        delta_log = workspace.logs / "party-delta.log"
        welcomes = delta_log.read_text().count("joined: the coordinator at")
        parties.start("delta")  # a busy host may take a while to start Python; count from when it is back
        wait_until(lambda: delta_log.read_text().count("joined: the coordinator at") > welcomes, 180, "delta back")
        restarted_after = len(rounds_done(workspace, "field"))
        assert coordinator.wait(timeout=300) == 0, (tmp_path / "coordinator.log").read_text()[-3000:]
    rows = rounds_done(workspace, "field")
    assert [r["round"] for r in rows] == list(range(1, 25))
    without = [r for r in rows[killed_after:restarted_after] if "delta" not in r["participants"]]
    assert without and all(sorted(r["participants"]) == ["alpha", "beta", "gamma"] for r in without)
    rejoined = [r["round"] for r in rows[restarted_after:] if "delta" in r["participants"]]
    assert rejoined and rejoined[0] <= restarted_after + 2 + 1, (restarted_after, rejoined)


def test_coordinator_killed_after_round_3_resumes_to_the_same_model(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws",
        parties=3,
        rounds=8,
        min_parties=3,
        round_timeout_s=30,
        training=QUICK_ROUNDS,  # the coordinator is killed between rounds: no need for long ones
    )
    config = str(layout.federation_config)
    with PartyProcesses(layout.party_configs, workspace.logs):
        reference = run_consortia("run", config, "--run-id", "reference", workspace=workspace.root)
        assert reference.returncode == 0, reference.stdout + reference.stderr
        coordinator = start_consortia(
            "run", config, "--run-id", "crashy", workspace=workspace.root, log=tmp_path / "coordinator.log"
        )
        wait_until(lambda: len(rounds_done(workspace, "crashy")) >= 3, 240, "round 3")
        os.killpg(coordinator.pid, signal.SIGKILL)  # the coordinator and its local Prefect server
        coordinator.wait(timeout=30)
        # a round is finished once checkpointed, after it was recorded: a kill in between redoes that round
        finished_before_kill = RunCheckpoints(workspace.checkpoints, "crashy").last_round()
        assert 1 <= finished_before_kill < 8
        resumed = run_consortia("resume", "crashy", workspace=workspace.root)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming crashy after round {finished_before_kill}" in resumed.stdout
    assert [r["round"] for r in rounds_done(workspace, "crashy")] == list(range(1, 9))
    final = load_arrays(RunCheckpoints(workspace.checkpoints, "crashy").global_params(8))
    expected = load_arrays(RunCheckpoints(workspace.checkpoints, "reference").global_params(8))
    for name in expected:
        np.testing.assert_allclose(final[name], expected[name], rtol=1e-5, atol=1e-6)
    client = mlflow.MlflowClient(workspace.tracking_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("breast-cancer-demo").experiment_id],
        filter_string="tags.`consortia.run_id` = 'crashy'",
    )
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "accuracy")
    assert sorted({m.step for m in history}) == list(range(1, 9))


def test_party_leave_deletes_its_metadata(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws",
        parties=3,
        rounds=10,
        min_parties=2,
        round_timeout_s=10,
        heartbeat_timeout_s=3,
        training=SLOW_ROUNDS,
    )
    with PartyProcesses(layout.party_configs, workspace.logs) as parties:
        coordinator = start_consortia(
            "run",
            str(layout.federation_config),
            "--run-id",
            "leaving",
            workspace=workspace.root,
            log=tmp_path / "coordinator.log",
        )
        wait_until(lambda: len(rounds_done(workspace, "leaving")) >= 1, 240, "round 1")
        db = sqlite3.connect(workspace.federation_db)
        assert db.execute("select count(*) from parties where name='gamma'").fetchone() == (1,)
        left = parties_leave(layout.party_configs["gamma"])
        assert left.returncode == 0, left.stdout + left.stderr
        parties.processes["gamma"].send_signal(signal.SIGTERM)
        assert coordinator.wait(timeout=300) == 0, (tmp_path / "coordinator.log").read_text()[-3000:]
    for table, column in (
        ("parties", "name"),
        ("validations", "party"),
        ("contributions", "party"),
        ("reputation_history", "party"),
        ("party_stats", "party"),
    ):
        assert db.execute(f"select count(*) from {table} where {column}='gamma'").fetchone() == (0,), table
    assert db.execute("select count(*) from contributions where party like 'left-%'").fetchone()[0] >= 1
    assert db.execute("select count(*) from parties").fetchone() == (2,)
    rows = rounds_done(workspace, "leaving")
    assert len(rows) == 10 and "gamma" not in rows[-1]["participants"]


def parties_leave(config_path):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "party_agent", "leave", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_contract_violation_at_one_party_stops_the_run_before_any_training(tmp_path):
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=2, min_parties=2)
    beta_rows = pd.read_csv(layout.party_data["beta"])
    beta_rows.loc[2, "mean_radius"] = -1.0  # a radius cannot be negative: the contract says so
    beta_rows.to_csv(layout.party_data["beta"], index=False)
    with PartyProcesses(layout.party_configs, workspace.logs):
        done = run_consortia("run", str(layout.federation_config), "--run-id", "violated", workspace=workspace.root)
    assert done.returncode != 0
    violation = "expect_column_values_to_be_between(mean_radius)"
    printed = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert f"error: run violated failed: data contract violated at beta: {violation}" in printed
    beta_log = (workspace.logs / "party-beta.log").read_text()
    assert f"validated against breast_cancer@v1: FAILED ({violation})" in beta_log  # told at start-up
    assert f"run violated failed: ContractError: data contract violated at beta: {violation}" in beta_log  # and why
    assert "validated against breast_cancer@v1: passed" in (workspace.logs / "party-alpha.log").read_text()
    summary = RunSummary.read(workspace.summary_path("violated"))
    assert summary.status == "failed" and summary.rounds == []
    assert summary.validation["beta"]["success"] is False and summary.validation["alpha"]["success"] is True
    assert not RunCheckpoints(workspace.checkpoints, "violated").global_params(1).exists()
