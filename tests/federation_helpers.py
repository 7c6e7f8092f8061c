"""Shared set-up for integration tests: a prepared demo workspace and the real CLIs as subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.adapters.workspace import Workspace
from components.core.config import FederationConfig, dump_yaml, load_federation_config
from flows.demo import DemoLayout, prepare_demo


def make_federation(root: Path, parties: int, rounds: int, **overrides: Any) -> tuple[Workspace, DemoLayout]:
    """A demo workspace whose federation.yaml has ``overrides`` applied (e.g. round_timeout_s=5)."""
    workspace = Workspace.at(root)
    layout = prepare_demo(workspace, parties=parties, rounds=rounds, seed=0)
    data = load_federation_config(layout.federation_config).model_dump(mode="json")
    data["training"].update(overrides.pop("training", {}))
    data.update(overrides)
    dump_yaml(FederationConfig.model_validate(data), layout.federation_config)
    return workspace, layout


def consortia_command(*args: str, workspace: Path) -> list[str]:
    return [sys.executable, "-m", "flows", *args, "--workspace", str(workspace)]


def consortia_env(workspace: Path) -> dict[str, str]:
    """This environment with the workspace's Prefect home (used only without the session's Prefect server)."""
    return {**os.environ, "PREFECT_HOME": str(workspace / "prefect")}


def embedded_prefect_env(workspace: Path) -> dict[str, str]:
    """Like ``consortia_env`` but without PREFECT_API_URL and with CONSORTIA_PREFECT_SERVER=ephemeral: the
    coordinator starts Prefect's temporary (embedded) server in its own process, as before workspace servers."""
    env = workspace_prefect_env(workspace)
    return {**env, "CONSORTIA_PREFECT_SERVER": "ephemeral", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}


def workspace_prefect_env(workspace: Path) -> dict[str, str]:
    """Like ``consortia_env`` but without PREFECT_API_URL: the one-machine default, the workspace's own Prefect
    server (started by the first command that needs it; stop it with ``stop_workspace_server``)."""
    env = consortia_env(workspace)
    env.pop("PREFECT_API_URL", None)
    env.pop("CONSORTIA_PREFECT_SERVER", None)
    return env


def run_consortia(*args: str, workspace: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        consortia_command(*args, workspace=workspace),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=consortia_env(workspace),
    )


def start_consortia(*args: str, workspace: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the coordinator in its own process group (so a test can SIGKILL all of it)."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            consortia_command(*args, workspace=workspace),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=consortia_env(workspace),
            start_new_session=True,
        )


def rounds_done(workspace: Workspace, run_id: str) -> list[dict[str, Any]]:
    path = workspace.summary_path(run_id)
    try:
        return json.loads(path.read_text())["rounds"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return []


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def started_prefect_server(home: Path, **settings: str) -> Iterator[str]:
    """``prefect server start`` on a free port of 127.0.0.1 with its home in ``home`` and extra ``settings``
    (e.g. PREFECT_API_DATABASE_CONNECTION_URL); its API URL while inside, stopped after."""
    from flows.demo import free_port
    from flows.processes import stop_process_groups

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    prefect = Path(sys.executable).parent / "prefect"
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    log = home / "server.log"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **settings}
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    try:
        wait_for_health(url, server, log, timeout_s=180)
        yield url
    finally:
        stop_process_groups([server])


def wait_for_health(url: str, server: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Wait until ``url``/health answers 200; fail with the end of ``log`` if ``server`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{server.args} exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
