"""`consortia deploy`: a federation deployed to a work pool on a Prefect server, run by `prefect worker start`.

The session's Prefect server (tests/conftest.py) schedules the runs, a real process worker picks them up,
and each run leaves its artifacts on the server and its ending (the flow's state hooks) in the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from components.adapters.store import FederationStore
from components.run.summary import RunSummary
from flows.artifacts import artifact_keys, contributions_table, rounds_table
from flows.cli import app as cli_app
from flows.processes import PartyProcesses, stop_process_groups
from tests.federation_helpers import consortia_env, make_federation, run_consortia, wait_until

_READ_BACK = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterName

async def main(deployment_name, run_id):
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        named = FlowRunFilter(name=FlowRunFilterName(any_=[run_id]))
        federation = (await client.read_flow_runs(flow_run_filter=named))[0]
        in_parent = await client.read_task_run(federation.parent_task_run_id)  # the subflow's task in its parent
        for _ in range(120):  # the scheduled flow run ends just after its federation subflow
            parent = await client.read_flow_run(in_parent.flow_run_id)
            if parent.state.is_final():
                break
            await asyncio.sleep(1)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[federation.id])))
        await client.pause_deployment(deployment.id)  # no more runs for the rest of the test session
        print(json.dumps({
            "pool": deployment.work_pool_name,
            "schedules": [s.schedule.interval.total_seconds() for s in deployment.schedules],
            "parameters": deployment.parameters,
            "parent": {"state": parent.state.type.value, "auto_scheduled": parent.auto_scheduled,
                       "deployment": parent.deployment_id == deployment.id},
            "federation": {"id": str(federation.id), "state": federation.state.type.value},
            "artifacts": {a.key: {"type": a.type, "data": a.data} for a in artifacts},
        }, default=str))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def read_back(deployment: str, run_id: str) -> dict[str, Any]:
    """What the Prefect server holds about the deployment and the run (a fresh process reads PREFECT_API_URL)."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_BACK, deployment, run_id], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_worker(pool: str, workspace: Path, log: Path) -> subprocess.Popen[bytes]:
    prefect = Path(sys.executable).parent / "prefect"
    env = {**consortia_env(workspace), "PREFECT_WORKER_QUERY_SECONDS": "2"}  # poll every 2 s, not 10
    with log.open("ab") as handle:
        return subprocess.Popen(
            [str(prefect), "worker", "start", "--pool", pool],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.timeout(900)  # a Prefect server's start, then a whole run: minutes on a loaded machine
def test_a_deployment_on_a_work_pool_runs_on_schedule_with_artifacts_and_hooks(tmp_path):
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=2, min_parties=2)
    pool, name = f"pool-{uuid.uuid4().hex[:8]}", f"nightly-{uuid.uuid4().hex[:8]}"

    deployed = run_consortia(
        "deploy", str(layout.federation_config), "--pool", pool, "--interval", "10", "--name", name,
        workspace=workspace.root,
    )  # fmt: skip
    printed = " ".join(deployed.stdout.split())
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"created work pool '{pool}'" in printed and "(every 10 s)" in printed

    def completed() -> list[RunSummary]:
        summaries = [RunSummary.read(path) for path in sorted(workspace.runs.glob("*.json"))]
        return [s for s in summaries if s.status == "completed"]

    def hooked() -> list[RunSummary]:  # completed, and its flow run's completion hook has run
        store = FederationStore(workspace.store_url) if completed() else None
        return [s for s in completed() if store and store.flow_run_rows(s.run_id)]

    worker_log = tmp_path / "worker.log"
    with PartyProcesses(layout.party_configs, workspace.logs):
        worker = start_worker(pool, workspace.root, worker_log)
        try:
            wait_until(lambda: hooked() or worker.poll() is not None, 300, "a scheduled run on the worker")
            assert worker.poll() is None, worker_log.read_text()[-3000:]
            summary = hooked()[0]
            server = read_back(f"consortia-scheduled-federation/{name}", summary.run_id)  # and pause the schedule
        finally:
            stop_process_groups([worker])

    assert server["pool"] == pool and server["schedules"] == [10.0]
    assert server["parameters"]["config_path"] == str(layout.federation_config.resolve())
    # the deployment's scheduler created the run and the worker ran it to the end
    assert server["parent"] == {"state": "COMPLETED", "auto_scheduled": True, "deployment": True}
    assert server["federation"]["state"] == "COMPLETED"

    keys = artifact_keys(summary.config["name"])
    artifacts = server["artifacts"]
    assert set(artifacts) == set(keys.values())
    assert json.loads(artifacts[keys["rounds"]]["data"]) == json.loads(json.dumps(rounds_table(summary)))
    assert [row["round"] for row in json.loads(artifacts[keys["rounds"]]["data"])] == [1, 2]
    contributions = json.loads(artifacts[keys["contributions"]]["data"])
    assert [row["party"] for row in contributions] == sorted(summary.contributions)
    assert contributions == json.loads(json.dumps(contributions_table(summary)))
    promotion = artifacts[keys["promotion"]]
    assert promotion["type"] == "markdown" and summary.promotion is not None
    assert summary.promotion.decision in promotion["data"] and summary.promotion.reason in promotion["data"]
    assert artifacts[keys["mlflow-run"]]["type"] == "markdown"  # a link artifact is stored as markdown
    assert f"/#/runs/{summary.mlflow_run_id}" in artifacts[keys["mlflow-run"]]["data"]

    ended = FederationStore(workspace.store_url).flow_run_rows(summary.run_id)
    assert [(row["flow_run_id"], row["state"]) for row in ended] == [(server["federation"]["id"], "COMPLETED")]
    assert f"federation run {summary.run_id}: flow run {server['federation']['id']} COMPLETED" in (
        workspace.coordinator_log.read_text()
    )


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server")
def test_a_failed_run_is_recorded_by_the_failure_hook(tmp_path):
    """No party ever joins: the run fails, and the hook writes that to the store and the log."""
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=1, min_parties=2, join_timeout_s=1)
    failed = run_consortia("run", str(layout.federation_config), "--run-id", "lonely-run", workspace=workspace.root)
    assert failed.returncode == 1, failed.stdout + failed.stderr

    [ended] = FederationStore(workspace.store_url).flow_run_rows("lonely-run")
    assert ended["state"] == "FAILED" and ended["message"]
    [run] = [row for row in FederationStore(workspace.store_url).run_rows() if row["run_id"] == "lonely-run"]
    assert run["status"] == "failed"
    assert f"federation run lonely-run: flow run {ended['flow_run_id']} FAILED" in workspace.coordinator_log.read_text()
    assert os.path.exists(workspace.summary_path("lonely-run"))


def test_a_deployment_needs_a_prefect_server_and_one_timing(tmp_path, monkeypatch):
    config = tmp_path / "federation.yaml"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    no_server = CliRunner().invoke(
        cli_app, ["deploy", str(config), "-w", str(tmp_path), "--pool", "p", "--interval", "60"]
    )
    assert no_server.exit_code == 1 and "needs a Prefect server" in " ".join(no_server.output.split())
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    both = CliRunner().invoke(
        cli_app, ["deploy", str(config), "-w", str(tmp_path), "--pool", "p", "--interval", "60", "--cron", "0 2 * * *"]
    )
    assert both.exit_code == 1 and "exactly one of --cron or --interval" in both.output
