"""`consortia schedule`: a federation served as a Prefect deployment whose scheduler starts the runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from components.run.summary import RunSummary
from flows.processes import PartyProcesses, stop_process_groups
from tests.federation_helpers import embedded_prefect_env, make_federation, start_consortia, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def test_a_schedule_starts_runs_with_fresh_ids_until_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "2")  # the runner looks for due runs every 2 s, not 10
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=1, min_parties=2)

    def completed() -> list[RunSummary]:
        summaries = [RunSummary.read(path) for path in sorted(workspace.runs.glob("*.json"))]
        return [s for s in summaries if s.status == "completed"]

    log = tmp_path / "schedule.log"
    with PartyProcesses(layout.party_configs, workspace.logs):
        serving = start_consortia(
            "schedule",
            str(layout.federation_config),
            "--interval",
            "10",
            "--name",
            "nightly",
            workspace=workspace.root,
            log=log,
        )
        try:
            wait_until(lambda: len(completed()) >= 2, 240, "two scheduled runs")
            serving.send_signal(signal.SIGTERM)  # how a service manager stops it (Ctrl-C does the same)
            assert serving.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            stop_process_groups([serving])  # whatever happened, leave no runner or flow run behind
    runs = completed()
    assert len({run.run_id for run in runs}) == len(runs)  # each scheduled run gets its own id
    assert all(run.run_id.startswith("breast-cancer-demo-") and len(run.rounds) == 1 for run in runs)
    printed = " ".join(log.read_text().split())
    assert "serving deployment 'nightly' (every 10 s)" in printed and "stopped serving 'nightly'" in printed

    script = """
import asyncio, json
from prefect.client.orchestration import get_client

async def main():
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("consortia-scheduled-federation/nightly")
        runs = await client.read_flow_runs()
        scheduled = [run for run in runs if run.deployment_id == deployment.id]
        print(json.dumps({"paused": deployment.paused, "scheduled": len(scheduled),
                          "states": {run.name: run.state.type.value for run in runs}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["paused"] is True  # stopping the runner paused the deployment and so its schedule
    assert record["scheduled"] >= 2  # the deployment's scheduler created the runs
    assert all(record["states"].get(run.run_id) == "COMPLETED" for run in runs)  # each one a federation flow run


def test_a_schedule_needs_a_prefect_server_and_one_timing(tmp_path):
    workspace, layout = make_federation(tmp_path / "ws", parties=1, rounds=1)
    command = [sys.executable, "-m", "flows", "schedule", str(layout.federation_config), "-w", str(workspace.root)]
    no_server = subprocess.run(
        [*command, "--interval", "60"], capture_output=True, text=True, env=embedded_prefect_env(workspace.root)
    )
    assert no_server.returncode == 1 and "needs a Prefect server" in no_server.stdout
    both = subprocess.run([*command, "--interval", "60", "--cron", "0 2 * * *"], capture_output=True, text=True)
    assert both.returncode == 1 and "exactly one of --cron or --interval" in both.stdout
