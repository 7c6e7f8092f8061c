"""Test-wide settings: a private Prefect home so tests never touch ~/.prefect, and a shared Prefect server."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="consortia-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``prefect server start`` for the session, exported as PREFECT_API_URL to every process started after.

    This is how a team runs Consortia past one machine, and it spares each coordinator the embedded
    server's start on a fresh database (about 20 s here). The demo and network-namespace tests clear
    PREFECT_API_URL to keep covering the embedded default.
    """
    from flows.demo import free_port
    from flows.processes import stop_process_groups
    from tests.federation_helpers import wait_for_health

    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    prefect = Path(sys.executable).parent / "prefect"
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    log = home / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
            start_new_session=True,
        )
    previous = os.environ.get("PREFECT_API_URL")
    try:
        wait_for_health(url, server, log, timeout_s=180)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        if os.environ.get("PREFECT_API_URL") == url:
            os.environ.pop("PREFECT_API_URL")
            if previous is not None:
                os.environ["PREFECT_API_URL"] = previous
        stop_process_groups([server])


@pytest.fixture(scope="session", autouse=True)
def _no_workspace_server_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """End every workspace Prefect server a test started (under this session's temporary folders) at the end."""
    yield
    from components.adapters.prefect_server import end_servers_under

    end_servers_under(tmp_path_factory.getbasetemp())
