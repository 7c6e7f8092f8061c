"""What a run's Prefect artifacts say, built from its summary (publishing them is tests/test_deploy.py's)."""

from __future__ import annotations

from pathlib import Path

from components.adapters.tracking import _artifact_location
from components.adapters.workspace import with_installed_driver
from components.run.summary import Promotion, RoundMetrics, RoundRow, RunSummary, ValuationReport
from flows.artifacts import (
    artifact_keys,
    contributions_table,
    mlflow_run_url,
    promotion_markdown,
    rounds_table,
    without_password,
)


def summary(**fields: object) -> RunSummary:
    row = RoundRow(
        round=1,
        participants=["alpha", "beta"],
        metrics=RoundMetrics(loss=0.25, accuracy=0.9),
        bytes_up=10,
        bytes_down=20,
        seconds=1.23456,
    )
    return RunSummary(run_id="demo-1", started_at="2026-12-01T00:00:00+00:00", config={}, rounds=[row], **fields)


def test_keys_are_the_federations_name_in_lowercase_and_dashes():
    assert artifact_keys("Breast_Cancer demo") == {
        "rounds": "breast-cancer-demo-rounds",
        "contributions": "breast-cancer-demo-contributions",
        "promotion": "breast-cancer-demo-promotion",
        "mlflow-run": "breast-cancer-demo-mlflow-run",
    }


def test_tables_hold_the_rounds_and_each_partys_contribution_and_reward():
    done = summary(
        contributions={"beta": 0.1, "alpha": 0.3},
        rewards={"alpha": 60.0, "beta": 40.0},
        reputation={"alpha": 0.7},
        valuation=ValuationReport(method="loo", utility="loss", errors={"alpha": 0.01}, ranks={"alpha": 1, "beta": 2}),
    )
    assert rounds_table(done) == [
        {
            "round": 1,
            "parties": "alpha, beta",
            "accuracy": 0.9,
            "loss": 0.25,
            "seconds": 1.235,
            "bytes_up": 10,
            "bytes_down": 20,
        }
    ]
    assert contributions_table(done) == [
        {"party": "alpha", "contribution": 0.3, "standard_error": 0.01, "rank": 1, "reward": 60.0, "reputation": 0.7},
        {"party": "beta", "contribution": 0.1, "standard_error": None, "rank": 2, "reward": 40.0, "reputation": None},
    ]


def test_the_promotion_artifact_gives_the_decision_and_its_reason_or_why_there_was_none():
    promoted = summary(
        promotion=Promotion(
            decision="promoted",
            reason="accuracy 0.9 beats 0.8",
            model_name="m",
            version=3,
            champion_version=3,
            candidate_value=0.9,
            champion_value=0.8,
        )
    )
    text = promotion_markdown(promoted)
    assert "demo-1: promoted" in text and "m v3" in text and "Reason: accuracy 0.9 beats 0.8" in text
    failed = summary(status="failed", error="PartyUnavailable: nobody came")
    assert (
        promotion_markdown(failed)
        == "# demo-1: no promotion decision\n\nthe run failed: PartyUnavailable: nobody came\n"
    )


def test_the_mlflow_link_points_at_the_tracking_server_or_the_configured_ui(monkeypatch):
    assert mlflow_run_url("http://mlflow:5000/", "abc") == "http://mlflow:5000/#/runs/abc"
    monkeypatch.delenv("CONSORTIA_MLFLOW_UI_URL", raising=False)
    assert mlflow_run_url("sqlite:////x/mlflow.db", "abc") == "http://127.0.0.1:5000/#/runs/abc"
    monkeypatch.setenv("CONSORTIA_MLFLOW_UI_URL", "https://ui.example")
    assert mlflow_run_url("postgresql+psycopg://u@db/mlflow", "abc") == "https://ui.example/#/runs/abc"
    assert (
        without_password("postgresql+psycopg://u:s3cret@db:5432/mlflow") == "postgresql+psycopg://u:***@db:5432/mlflow"
    )
    assert without_password("postgresql+psycopg://u@db/mlflow") == "postgresql+psycopg://u@db/mlflow"


def test_postgresql_urls_use_the_installed_driver_and_database_stores_keep_artifacts_in_the_workspace():
    assert with_installed_driver("postgresql://u@db/x") == "postgresql+psycopg://u@db/x"
    assert with_installed_driver("postgresql+asyncpg://u@db/x") == "postgresql+asyncpg://u@db/x"
    assert with_installed_driver("sqlite:////w/federation.db") == "sqlite:////w/federation.db"
    root = Path("/w/mlflow/artifacts")
    assert _artifact_location("sqlite:////w/mlflow/mlflow.db", None) == "file:///w/mlflow/artifacts"
    assert _artifact_location("postgresql+psycopg://u@db/mlflow", root) == "file:///w/mlflow/artifacts"
    assert _artifact_location("http://mlflow:5000", root) is None  # the server's own artifact store
