"""Every store on a real PostgreSQL server: the federation store, MLflow's backend and Prefect's own database.

One federation run whose three stores are databases of the session's PostgreSQL (tests/conftest.py), read
back with SQL: nothing of it lands in the workspace's SQLite files.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from components.adapters.store import FederationStore
from components.core.errors import EdgeUnavailable
from components.run.summary import RunSummary
from flows.demo import free_port
from flows.processes import PartyProcesses
from tests.federation_helpers import make_federation, run_consortia, started_prefect_server

pytestmark = pytest.mark.integration


def rows(url: str, query: str, **values: object) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(query), values)]
    finally:
        engine.dispose()


@pytest.mark.timeout(900)  # a Prefect server's start, then a whole run: minutes on a loaded machine
def test_a_run_keeps_its_store_tracking_and_prefect_state_in_postgresql(tmp_path, postgres, monkeypatch):
    store, tracking = postgres.create_database("federation"), postgres.create_database("mlflow")
    prefect_db = postgres.create_database("prefect")
    monkeypatch.setenv("CONSORTIA_STORE_URL", store.replace("postgresql+psycopg://", "postgresql://"))  # as typed
    monkeypatch.setenv("CONSORTIA_TRACKING_URI", tracking)
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=2, min_parties=2)
    home = tmp_path / "prefect-on-postgres"
    home.mkdir()
    asyncpg = prefect_db.replace("+psycopg", "+asyncpg")
    with (
        started_prefect_server(home, PREFECT_API_DATABASE_CONNECTION_URL=asyncpg) as api,
        PartyProcesses(layout.party_configs, workspace.logs),
    ):
        monkeypatch.setenv("PREFECT_API_URL", api)
        done = run_consortia("run", str(layout.federation_config), "--run-id", "pg-run", workspace=workspace.root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = RunSummary.read(workspace.summary_path("pg-run"))
    assert summary.status == "completed" and summary.promotion is not None

    [run] = rows(store, "SELECT status, mlflow_run_id FROM runs WHERE run_id = 'pg-run'")
    assert run == {"status": "completed", "mlflow_run_id": summary.mlflow_run_id}
    trained = rows(store, "SELECT round FROM rounds WHERE run_id = 'pg-run' ORDER BY round")
    assert [r["round"] for r in trained] == [1, 2]
    contributed = rows(store, "SELECT party FROM contributions WHERE run_id = 'pg-run' AND round = 0 ORDER BY party")
    assert [r["party"] for r in contributed] == sorted(summary.contributions)
    assert [r["state"] for r in rows(store, "SELECT state FROM flow_runs WHERE run_id = 'pg-run'")] == ["COMPLETED"]

    [tracked] = rows(tracking, "SELECT status, artifact_uri FROM runs WHERE run_uuid = :id", id=summary.mlflow_run_id)
    assert tracked["status"] == "FINISHED"
    assert str(tracked["artifact_uri"]).startswith(workspace.mlflow_artifacts.as_uri())  # files stay on disk
    logged = rows(tracking, "SELECT step FROM metrics WHERE run_uuid = :id AND key = 'loss'", id=summary.mlflow_run_id)
    assert sorted(r["step"] for r in logged) == [1, 2]
    versions = rows(tracking, "SELECT version FROM model_versions WHERE name = :n", n=summary.promotion.model_name)
    assert [r["version"] for r in versions] == [summary.promotion.version]

    [flow_run] = rows(prefect_db, "SELECT state_type FROM flow_run WHERE name = 'pg-run'")
    assert flow_run["state_type"] == "COMPLETED"  # Prefect's own record of the run, in PostgreSQL
    assert not workspace.federation_db.exists() and not workspace.mlflow_db.exists()


def test_an_unreachable_postgresql_store_is_a_transient_error():
    """A refused connection is worth retrying (the server may be restarting): the flow's tasks retry it."""
    with pytest.raises(EdgeUnavailable, match="store"):
        FederationStore(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")
