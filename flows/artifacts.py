"""Prefect artifacts of every federation run, under keys that stay the same from run to run of a federation.

``<federation>-rounds`` (a table of rounds), ``<federation>-contributions`` (contributions, rewards and
reputation per party), ``<federation>-promotion`` (the decision and its reason, markdown) and
``<federation>-mlflow-run`` (a link to the run in the MLflow UI). Each run adds a version to every key, so
the Prefect UI's Artifacts page shows a federation's history; each version belongs to its flow run.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from components.run.summary import RunSummary

DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def artifact_keys(federation: str) -> dict[str, str]:
    """The artifact key of each kind for ``federation`` (Prefect keys: lowercase letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", federation.lower()).strip("-") or "federation"
    return {kind: f"{slug}-{kind}" for kind in ("rounds", "contributions", "promotion", "mlflow-run")}


def rounds_table(summary: RunSummary) -> list[dict[str, Any]]:
    rows = []
    for row in summary.rounds:
        rows.append(
            {
                "round": row.round,
                "parties": ", ".join(row.participants),
                **{name: round(value, 6) for name, value in row.metrics.present().items()},
                "seconds": round(row.seconds, 3),
                "bytes_up": row.bytes_up,
                "bytes_down": row.bytes_down,
                **({"epsilon": row.epsilon} if row.epsilon is not None else {}),
            }
        )
    return rows


def contributions_table(summary: RunSummary) -> list[dict[str, Any]]:
    valuation = summary.valuation
    parties = sorted(set(summary.contributions) | set(summary.rewards))
    return [
        {
            "party": party,
            "contribution": summary.contributions.get(party),
            "standard_error": valuation.errors.get(party) if valuation else None,
            "rank": valuation.ranks.get(party) if valuation else None,
            "reward": summary.rewards.get(party),
            "reputation": summary.reputation.get(party),
        }
        for party in parties
    ]


def promotion_markdown(summary: RunSummary) -> str:
    promotion = summary.promotion
    if promotion is None:
        why = f"the run {summary.status}" + (f": {summary.error}" if summary.error else " before promotion")
        return f"# {summary.run_id}: no promotion decision\n\n{why}\n"
    values = f"{promotion.metric} {promotion.candidate_value} (champion before: {promotion.champion_value})"
    return (
        f"# {summary.run_id}: {promotion.decision}\n\n"
        f"Registered **{promotion.model_name} v{promotion.version}**; "
        f"@{promotion.alias} is v{promotion.champion_version}.\n\n"
        f"Reason: {promotion.reason}\n\n{values}\n"
    )


def mlflow_run_url(tracking_uri: str, mlflow_run_id: str) -> str:
    """The run's page in the MLflow UI: the tracking server's own, else ``CONSORTIA_MLFLOW_UI_URL`` (default
    ``mlflow ui``'s address) for a database store."""
    if tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri
    else:
        base = os.environ.get("CONSORTIA_MLFLOW_UI_URL", DEFAULT_MLFLOW_UI)
    return f"{base.rstrip('/')}/#/runs/{mlflow_run_id}"


def without_password(url: str) -> str:
    """``url`` safe to show: a password in it becomes ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def publish_run_artifacts(summary: RunSummary, federation: str, tracking_uri: str) -> dict[str, UUID]:
    """Create this run's version of every artifact; their ids by kind."""
    keys = artifact_keys(federation)
    status = f"run {summary.run_id} ({summary.status})"
    ids = {
        "rounds": create_table_artifact(rounds_table(summary), key=keys["rounds"], description=f"Rounds of {status}"),
        "contributions": create_table_artifact(
            contributions_table(summary),
            key=keys["contributions"],
            description=f"Contributions and rewards of {status}"
            + (f": {summary.valuation.statement}" if summary.valuation and summary.valuation.statement else ""),
        ),
        "promotion": create_markdown_artifact(
            promotion_markdown(summary), key=keys["promotion"], description=f"Promotion decision of {status}"
        ),
    }
    if summary.mlflow_run_id:
        ids["mlflow-run"] = create_link_artifact(
            mlflow_run_url(tracking_uri, summary.mlflow_run_id),
            link_text=f"MLflow run {summary.mlflow_run_id}",
            key=keys["mlflow-run"],
            description=f"MLflow run of {status}, tracking store {without_password(tracking_uri)}",
        )
    return ids
