"""The workspace's own Prefect server: started once, reused, never taken for an orphan, replaced when dead, stopped
by ``consortia prefect stop``. A real ``prefect server start`` and the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil
import pytest

from components.adapters.orphans import end_orphaned_servers
from components.adapters.prefect_server import healthy
from components.adapters.workspace import Workspace
from tests.federation_helpers import consortia_command, workspace_prefect_env

pytestmark = pytest.mark.integration


def _consortia(*args: str, workspace: Workspace) -> subprocess.CompletedProcess[str]:
    command = consortia_command(*args, workspace=workspace.root)
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=workspace_prefect_env(workspace.root)
    )


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.timeout(600)  # two `prefect server start`s: about 50 s on a quiet machine, minutes on a loaded one
def test_one_server_per_workspace_reused_replaced_when_dead_and_stopped(tmp_path):
    workspace = Workspace.at(tmp_path / "ws").create()
    started = _consortia("prefect", "start", workspace=workspace)
    assert started.returncode == 0, started.stdout + started.stderr
    first = workspace.prefect_server().running()
    assert first is not None and f"export PREFECT_API_URL={first.url}" in started.stdout

    again = _consortia("prefect", "start", workspace=workspace)  # a later command reuses it
    assert again.returncode == 0 and workspace.prefect_server().record() == first
    assert end_orphaned_servers(workspace.prefect_home) == []  # its starter exited, yet it is no orphan
    assert healthy(first.url)

    os.killpg(first.pid, signal.SIGKILL)  # the server dies (OOM killer, kill -9): the next command replaces it
    assert not healthy(first.url, timeout_s=0.5)
    status = _consortia("prefect", "status", workspace=workspace)
    assert status.returncode == 1 and "no Prefect server running" in status.stdout
    replaced = workspace.prefect_server().url()
    second = workspace.prefect_server().record()
    assert second is not None and second.pid != first.pid and replaced == second.url and healthy(replaced)

    stopped = _consortia("prefect", "stop", workspace=workspace)
    assert stopped.returncode == 0 and f"stopped Prefect server pid {second.pid}" in stopped.stdout
    assert _gone(second.pid) and not healthy(second.url, timeout_s=0.5)
    assert workspace.prefect_server().record() is None
