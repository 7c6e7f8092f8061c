"""`consortia demo` as a user runs it: defaults, accuracy against the centralized baseline, clean shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from components.adapters.workspace import Workspace
from tests.federation_helpers import workspace_prefect_env

pytestmark = pytest.mark.integration


def _party_processes(workspace: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "party_agent" in cmdline and str(workspace) in cmdline:
            found.append(process)
    return found


def test_demo_defaults_reach_the_centralized_baseline(tmp_path):
    workspace, summary_path = tmp_path / "ws", tmp_path / "summary.json"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flows", "demo", "--workspace", str(workspace), "--summary", str(summary_path)],
            capture_output=True,
            text=True,
            timeout=400,
            env=workspace_prefect_env(workspace),  # the one-machine default: the workspace's own Prefect server
        )
        seconds = time.perf_counter() - started
        assert Workspace.at(workspace).prefect_server().running() is not None  # left running for the next run
    finally:
        Workspace.at(workspace).prefect_server().stop()
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(summary_path.read_text())
    final, baseline = summary["final_metrics"]["accuracy"], summary["centralized_baseline"]["accuracy"]
    print(f"demo: {seconds:.1f} s, final accuracy {final:.4f}, centralized {baseline:.4f}")
    assert len(summary["rounds"]) == 10
    assert all(len(r["participants"]) == 3 for r in summary["rounds"])
    assert final >= 0.95
    assert abs(final - baseline) <= 0.02
    assert set(summary["contributions"]) == {"alpha", "beta", "gamma"}
    assert summary["promotion"]["decision"] == "promoted"
    assert "final held-out accuracy" in done.stdout
    assert _party_processes(workspace) == []


def test_ctrl_c_stops_every_process_and_exits_non_zero(tmp_path, prefect_server):
    workspace = tmp_path / "ws"
    demo = subprocess.Popen(
        [sys.executable, "-m", "flows", "demo", "--workspace", str(workspace), "--rounds", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as from a terminal: a runner started in the background (`make test &`) passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(workspace.glob("runs/*.json")):
        time.sleep(0.5)
    assert len(_party_processes(workspace)) == 3
    demo.send_signal(signal.SIGINT)
    output, _ = demo.communicate(timeout=60)
    assert demo.returncode != 0
    assert "interrupt" in output
    time.sleep(0.5)
    assert _party_processes(workspace) == []
