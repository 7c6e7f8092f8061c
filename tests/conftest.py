"""Test-wide settings: a private Prefect home so tests never touch ~/.prefect, and a shared Prefect server."""

import os
import tempfile
from collections.abc import Iterator

import pytest

from tests.postgres import PostgresServer, start_postgres

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
    from tests.federation_helpers import started_prefect_server

    previous = os.environ.get("PREFECT_API_URL")
    with started_prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        try:
            os.environ["PREFECT_API_URL"] = url
            yield url
        finally:
            if os.environ.get("PREFECT_API_URL") == url:
                os.environ.pop("PREFECT_API_URL")
                if previous is not None:
                    os.environ["PREFECT_API_URL"] = previous


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (Debian's, from `make system`); skipped, saying why, without one."""
    from flows.demo import free_port

    server = start_postgres(free_port())
    if isinstance(server, str):
        pytest.skip(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_workspace_server_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """End every workspace Prefect server a test started (under this session's temporary folders) at the end."""
    yield
    from components.adapters.prefect_server import end_servers_under

    end_servers_under(tmp_path_factory.getbasetemp())
