"""A coordinator killed with SIGKILL, as a new user's terminal or OOM killer does it: the embedded Prefect server it
leaves behind is ended by the next command, the run shows as interrupted (not running), resumes, and once completed
is final. Real party processes, the real CLI, Prefect's embedded server (the one-machine default)."""

from __future__ import annotations

import signal
import subprocess

import mlflow
import psutil
import pytest

from components.adapters.orphans import orphaned_servers
from flows.processes import PartyProcesses
from tests.federation_helpers import (
    consortia_command,
    embedded_prefect_env,
    make_federation,
    rounds_done,
    wait_until,
)

pytestmark = pytest.mark.integration


def _consortia(*args: str, workspace) -> subprocess.CompletedProcess[str]:
    command = consortia_command(*args, workspace=workspace)
    env = {**embedded_prefect_env(workspace), "COLUMNS": "80"}  # a default terminal's width
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def _ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # killed; not every PID 1 reaps
    except psutil.NoSuchProcess:
        return True


def test_sigkilled_coordinator_leaves_no_server_and_an_interrupted_run_that_resumes_once(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws", parties=2, rounds=3, min_parties=2, round_timeout_s=30, training={"local_epochs": 20}
    )
    run_id = "breast-cancer-demo-20261201-134455-0a3f"  # as long as the ids `consortia run` makes
    with PartyProcesses(layout.party_configs, workspace.logs):
        with (tmp_path / "coordinator.log").open("ab") as log:
            coordinator = subprocess.Popen(
                consortia_command("run", str(layout.federation_config), "--run-id", run_id, workspace=workspace.root),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=embedded_prefect_env(workspace.root),
            )
        wait_until(lambda: len(rounds_done(workspace, run_id)) >= 1, 300, "round 1")
        assert orphaned_servers(workspace.prefect_home) == []  # the live coordinator's server is no orphan
        coordinator.send_signal(signal.SIGKILL)  # the coordinator alone, as `kill -9 PID` does
        coordinator.wait(timeout=30)
        orphans = orphaned_servers(workspace.prefect_home)
        assert len(orphans) == 1  # the embedded server outlived its coordinator

        listed = _consortia("runs", workspace=workspace.root)
        assert listed.returncode == 0, listed.stderr
        assert f"ended Prefect server pid {orphans[0].pid}: its coordinator had died" in listed.stdout
        assert _ended(orphans[0].pid)
        row = next(line for line in listed.stdout.splitlines() if run_id in line)
        assert "interrupted" in row and "running" not in row, listed.stdout  # whole id, not cut at 80 columns
        assert "`consortia resume RUN_ID` continues it" in listed.stdout

        resumed = _consortia("resume", "breast-cancer-demo-20261201-1344", workspace=workspace.root)  # a unique prefix
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert orphaned_servers(workspace.prefect_home) == []  # the resume stopped its own server on the way out
    assert [r["round"] for r in rounds_done(workspace, run_id)] == [1, 2, 3]
    record = workspace.summary_path(run_id).read_bytes()
    client = mlflow.MlflowClient(workspace.tracking_uri)
    versions = client.search_model_versions("name = 'consortia-breast-cancer'")
    assert [v.tags["consortia.run_id"] for v in versions] == [run_id]

    again = _consortia("resume", run_id, workspace=workspace.root)
    assert again.returncode == 1
    assert f"error: run {run_id} completed at " in again.stdout
    assert workspace.summary_path(run_id).read_bytes() == record
    assert len(client.search_model_versions("name = 'consortia-breast-cancer'")) == 1
    listed = _consortia("runs", workspace=workspace.root)
    assert "completed" in next(line for line in listed.stdout.splitlines() if run_id in line)
