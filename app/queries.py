"""Read-only data access for the dashboard: run summaries, the federation store and the model registry.

Sources come from the workspace (``CONSORTIA_WORKSPACE``, default ``./.consortia``); ``CONSORTIA_STORE_URL``
and ``CONSORTIA_TRACKING_URI`` point at other stores. Nothing here writes: a store that does not exist
yet reads as empty instead of being created. Loaders are cached for a few seconds only, so a live run
shows up; the functions that turn loaded records into frames are pure.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st
from pydantic import BaseModel

from components.adapters.checkpoints import shown_status
from components.adapters.store import FederationStore
from components.adapters.workspace import Workspace
from components.core.ports import RegisteredVersion
from components.run import lineage
from components.run.lineage import ModelCard
from components.run.summary import RunSummary

if TYPE_CHECKING:
    from components.adapters.tracking import ModelRegistry

CACHE_TTL_S = 3
REFRESH_S = 5
ONLINE_WINDOW_S = 30.0  # a party is online now if it said hello or sent a heartbeat this recently
_SQLITE_PREFIX = "sqlite:///"


class Sources(BaseModel, frozen=True):
    """Where the dashboard reads from."""

    runs_folder: str
    store_url: str
    tracking_uri: str
    checkpoints_folder: str = ""  # where run leases tell a live coordinator from a dead one
    stats_folder: str = ""

    @classmethod
    def from_environment(cls) -> Sources:
        workspace = Workspace.at()
        return cls(
            runs_folder=str(workspace.runs),
            store_url=workspace.store_url,
            tracking_uri=workspace.tracking_uri,
            checkpoints_folder=str(workspace.checkpoints),
            stats_folder=str(workspace.stats),
        )


# ---- loaders (cached, read-only) ----


def _exists(url: str) -> bool:
    """False for a SQLite URL whose file is missing (opening it would create it); True for servers."""
    return not url.startswith(_SQLITE_PREFIX) or Path(url.removeprefix(_SQLITE_PREFIX)).is_file()


@st.cache_resource(show_spinner=False)
def _open_store(store_url: str) -> FederationStore:
    return FederationStore(store_url)


@st.cache_resource(show_spinner=False)
def _open_registry(tracking_uri: str) -> ModelRegistry:
    from components.adapters.tracking import ModelRegistry  # imports mlflow and torch: only pages that show models pay

    return ModelRegistry(tracking_uri)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def run_rows(store_url: str) -> list[dict[str, Any]]:
    """The store's runs table, newest first (empty without a store)."""
    return _open_store(store_url).run_rows() if _exists(store_url) else []


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def party_rows(store_url: str) -> list[dict[str, Any]]:
    """Registered parties with their lifetime round and message counts."""
    return _open_store(store_url).party_overview() if _exists(store_url) else []


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def reputation_rows(store_url: str) -> list[dict[str, Any]]:
    return _open_store(store_url).reputation_rows() if _exists(store_url) else []


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def validation_rows(store_url: str) -> list[dict[str, Any]]:
    return _open_store(store_url).validation_rows() if _exists(store_url) else []


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def run_summaries(runs_folder: str, store_url: str) -> list[RunSummary]:
    """Every readable run summary (the workspace's and those the store points to), newest first.

    A summary that cannot be parsed (caught mid-write, or from an incompatible version) is left out of
    this refresh rather than failing the page.
    """
    paths = {path.stem: path for path in Path(runs_folder).glob("*.json")}
    for row in run_rows(store_url):
        if row["summary_path"] and row["run_id"] not in paths:
            paths[row["run_id"]] = Path(row["summary_path"])
    summaries = []
    for path in paths.values():
        try:
            summaries.append(RunSummary.read(path))
        except (OSError, ValueError):
            continue
    return sorted(summaries, key=lambda s: s.started_at, reverse=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def model_versions(tracking_uri: str, model_names: tuple[str, ...]) -> list[RegisteredVersion]:
    """Every registered version of the named models (empty without a registry)."""
    if not _exists(tracking_uri):
        return []
    registry = _open_registry(tracking_uri)
    return [version for name in model_names for version in registry.versions(name)]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def model_card_json(tracking_uri: str, name: str, version: int, run_id: str | None) -> dict[str, Any] | None:
    """The card (JSON) on the MLflow run of version ``version`` of ``name``; None without one."""
    if run_id is None or not _exists(tracking_uri):
        return None
    registered = RegisteredVersion(name=name, version=version, run_id=run_id)
    return _open_registry(tracking_uri).run_artifact(registered, lineage.CARD_JSON)


def model_card(sources: Sources, version: RegisteredVersion) -> ModelCard | None:
    """The version's model card, or None for versions registered without one (or whose card cannot be read)."""
    artifact = version.tags.get(lineage.MODEL_CARD)
    if artifact is None:
        return None
    raw = model_card_json(sources.tracking_uri, version.name, version.version, version.run_id)
    try:
        return ModelCard.model_validate(raw) if raw is not None else None
    except ValueError:
        return None


def summaries(sources: Sources) -> list[RunSummary]:
    """Every run, newest first; a ``running`` run whose coordinator died reads as ``interrupted`` (resumable)."""
    runs = run_summaries(sources.runs_folder, sources.store_url)
    if not sources.checkpoints_folder:
        return runs
    folder = Path(sources.checkpoints_folder)
    return [run.model_copy(update={"status": shown_status(folder, run.run_id, run.status)}) for run in runs]


def registered_versions(sources: Sources, runs: Iterable[RunSummary]) -> list[RegisteredVersion]:
    return model_versions(sources.tracking_uri, model_names(runs))


# ---- pure: records -> frames ----


def model_names(runs: Iterable[RunSummary]) -> tuple[str, ...]:
    """Registered model names the runs promote to, sorted."""
    return tuple(sorted({run.config.get("promotion", {}).get("model_name") for run in runs} - {None}))


def _parse_time(value: str | datetime | None) -> datetime | None:
    """A timezone-aware time; naive values (SQLite drops the zone) are UTC."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_wall_time(moment: datetime | None) -> datetime | None:
    """UTC as a zone-less time for frames: Arrow (Streamlit's tables) warns on zone-aware pandas columns."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment else None


def run_parties(run: RunSummary) -> list[str]:
    """The parties a run's config invited, else everyone who took part in a round."""
    invited = [p["name"] for p in run.config.get("parties", [])]
    return invited or sorted({p for row in run.rounds for p in row.participants})


def best_accuracy(run: RunSummary) -> float | None:
    return max((row.metrics.accuracy for row in run.rounds if row.metrics.accuracy is not None), default=None)


_RUN_COLUMNS = [
    "run_id",
    "federation",
    "status",
    "started_at",
    "best_accuracy",
    "final_accuracy",
    "parties",
    "rounds",
    "duration_s",
    "promotion",
]


def runs_frame(runs: list[RunSummary], now: datetime | None = None) -> pd.DataFrame:
    """One row per run: status, best and final accuracy, parties, rounds, duration, promotion."""
    now = now or datetime.now(UTC)
    rows = []
    for run in runs:
        started = _parse_time(run.started_at)
        finished = _parse_time(run.finished_at)
        rows.append(
            {
                "run_id": run.run_id,
                "federation": run.config.get("name", ""),
                "status": run.status,
                "started_at": _utc_wall_time(started),
                "best_accuracy": best_accuracy(run),
                "final_accuracy": run.final_metrics.accuracy if run.final_metrics else None,
                "parties": len(run_parties(run)),
                "rounds": f"{len(run.rounds)}/{run.config.get('rounds', len(run.rounds))}",
                "duration_s": ((finished or now) - started).total_seconds() if started else None,
                "promotion": run.promotion.decision if run.promotion else "",
            }
        )
    return pd.DataFrame(rows, columns=_RUN_COLUMNS)


def rounds_frame(run: RunSummary) -> pd.DataFrame:
    """One row per finished round of a run."""
    rows = [
        {
            "round": row.round,
            "participants": len(row.participants),
            "who": ", ".join(row.participants),
            "accuracy": row.metrics.accuracy,
            "roc_auc": row.metrics.roc_auc,
            "loss": row.metrics.loss,
            "bytes_up": row.bytes_up,
            "bytes_down": row.bytes_down,
            "seconds": row.seconds,
            "epsilon": row.epsilon,
        }
        for row in sorted(run.rounds, key=lambda r: r.round)
    ]
    columns = ["round", "participants", "who", "accuracy", "roc_auc", "loss", "bytes_up", "bytes_down", "seconds"]
    return pd.DataFrame(rows, columns=[*columns, "epsilon"])


def long_form(frame: pd.DataFrame, id_column: str, values: list[str], name: str = "series") -> pd.DataFrame:
    """Columns ``values`` stacked into (``id_column``, ``name``, value) rows, for one chart line per column."""
    return frame.melt(id_vars=[id_column], value_vars=values, var_name=name, value_name="value")


def party_metrics_frame(run: RunSummary) -> pd.DataFrame:
    """What each party reported for its own training, per round: (round, party, metric, value)."""
    rows = [
        {"round": row.round, "party": party, "metric": metric, "value": value}
        for row in run.rounds
        for party, metrics in row.party_metrics.items()
        for metric, value in metrics.items()
    ]
    return pd.DataFrame(rows, columns=["round", "party", "metric", "value"])


def runs_covered(runs: Iterable[RunSummary]) -> str:
    """Which runs a figure covers, e.g. "3 runs: 2 completed, 1 failed"."""
    statuses = [run.status for run in runs]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses), key=lambda s: (-statuses.count(s), s)))
    return f"{len(statuses)} run{'s' if len(statuses) != 1 else ''}" + (f": {counts}" if counts else "")


def refusals_frame(runs: Iterable[RunSummary]) -> pd.DataFrame:
    """Per run (whatever its status) and party: messages refused at the boundary, replies late, rounds refused."""
    rows = []
    for run in runs:
        in_rounds = Counter(party for row in run.rounds for party in row.rejected)
        for party in sorted({*run.rejected_messages, *run.late_messages, *in_rounds}):
            counts = (run.rejected_messages.get(party, 0), run.late_messages.get(party, 0), in_rounds.get(party, 0))
            if any(counts):
                rows.append(
                    {"run_id": run.run_id, "status": run.status, "party": party}
                    | dict(zip(("refused", "late", "rounds_refused"), counts, strict=True))
                )
    return pd.DataFrame(rows, columns=["run_id", "status", "party", "refused", "late", "rounds_refused"])


def rejections_frame(runs: Iterable[RunSummary]) -> pd.DataFrame:
    """Every message or reply the coordinator refused or missed: (run_id, round, party, reason)."""
    rows = [
        {"run_id": run.run_id, "round": row.round, "party": party, "reason": reason}
        for run in runs
        for row in run.rounds
        for party, reason in row.rejected.items()
    ]
    return pd.DataFrame(rows, columns=["run_id", "round", "party", "reason"])


def reputation_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Each party's reputation after each run (the store's history): (recorded_at, run_id, party, reputation)."""
    records = [
        {
            "recorded_at": _utc_wall_time(_parse_time(r["recorded_at"])),
            "run_id": r["run_id"],
            "party": r["party"],
            "reputation": r["reputation"],
        }
        for r in rows
    ]
    return pd.DataFrame(records, columns=["recorded_at", "run_id", "party", "reputation"])


def parties_frame(rows: list[dict[str, Any]], *, run_live: bool, now: datetime | None = None) -> pd.DataFrame:
    """The store's parties: heartbeat age, online-now flag, reputation, lifetime counts, resource profile.

    A party is online now only while a run is live (a coordinator records heartbeats only then) and its last
    heartbeat is recent; a stored ``online`` that is older (a party that left, a run that failed) shows offline."""
    now = now or datetime.now(UTC)
    records = []
    for row in rows:
        last_seen = _parse_time(row["last_seen"])
        age = (now - last_seen).total_seconds() if last_seen else None
        resources = row.get("resources") or {}
        online = run_live and row["status"] == "online" and age is not None and age <= ONLINE_WINDOW_S
        records.append(
            {
                "party": row["name"],
                "status": "online" if online else "offline" if row["status"] == "online" else row["status"],
                "online_now": online,
                "last_heartbeat": _utc_wall_time(last_seen),
                "seconds_ago": age,
                "reputation": row["reputation"],
                "rounds_joined": row.get("rounds_joined") or 0,
                "rounds_missed": row.get("rounds_missed") or 0,
                "rejected_messages": row.get("rejected_messages") or 0,
                "cores": resources.get("cores"),
                "memory_mb": resources.get("memory_mb"),
                "cpu_percent": resources.get("cpu_percent"),
                "versions": ", ".join(f"{k} {v}" for k, v in sorted((resources.get("versions") or {}).items())),
            }
        )
    columns = ["party", "status", "online_now", "last_heartbeat", "seconds_ago", "reputation", "rounds_joined"]
    counts = ["rounds_missed", "rejected_messages", "cores", "memory_mb", "cpu_percent", "versions"]
    return pd.DataFrame(records, columns=[*columns, *counts])


def contributions_frame(run: RunSummary) -> pd.DataFrame:
    """Contribution of each party in each round: (round, party, value)."""
    rows = [
        {"round": int(round_number), "party": party, "value": value}
        for round_number, values in sorted(run.round_contributions.items())
        for party, value in values.items()
    ]
    return pd.DataFrame(rows, columns=["round", "party", "value"])


MODEL_METRICS = ("accuracy", "roc_auc", "rmse", "mae", "r2", "loss")


def totals_frame(run: RunSummary) -> pd.DataFrame:
    """Per party: total contribution, two standard errors and rank (equal within error, equal rank), reward, the
    reward's share of the pool, and the reward model it got with its held-out metrics (``model_<metric>``)."""
    parties = sorted({*run.contributions, *run.rewards, *run.model_rewards})
    pool = sum(run.rewards.values())
    report = run.valuation
    metrics = [m for m in MODEL_METRICS if any(m in r.metrics for r in run.model_rewards.values())]
    rows = []
    for party in parties:
        model = run.model_rewards.get(party)
        rows.append(
            {
                "party": party,
                "contribution": run.contributions.get(party),
                "error": 2 * report.errors[party] if report and party in report.errors else None,
                "rank": report.ranks.get(party) if report else None,
                "reward": run.rewards.get(party),
                "reward_share": run.rewards[party] / pool if party in run.rewards and pool > 0 else None,
                "model_from": ", ".join(model.sources) if model and model.sources else None,
                **{f"model_{m}": model.metrics.get(m) if model else None for m in metrics},
            }
        )
    columns = ["party", "contribution", "error", "rank", "reward", "reward_share", "model_from"]
    return pd.DataFrame(rows, columns=[*columns, *(f"model_{m}" for m in metrics)])


def glm_frame(run: RunSummary) -> pd.DataFrame:
    """A GLM run's coefficients (estimate, standard error, z or t, p-value, confidence interval); else empty."""
    if run.glm is None:
        return pd.DataFrame()
    frame = pd.DataFrame([c.model_dump() for c in run.glm.coefficients])
    return frame.rename(columns={"statistic": f"{run.glm.statistic} value"})


def stats_reports(stats_folder: str) -> dict[str, dict[str, Any]]:
    """Federated statistics reports (``consortia stats``) by contract, newest file name last."""
    folder = Path(stats_folder) if stats_folder else None
    if folder is None or not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def stats_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per feature: pooled figures, and which parties suppressed it (shown, never hidden)."""
    rows = []
    for feature, entry in report["features"].items():
        pooled = entry["pooled"] or {}
        count = pooled.get("count", 0)
        rows.append(
            {
                "feature": feature,
                "count": count,
                "missing": pooled.get("missing"),
                "mean": pooled.get("mean"),
                "sd": math.sqrt(pooled["m2"] / (count - 1)) if count > 1 else None,
                "min": pooled.get("min"),
                "median": entry["quantiles"].get("q50"),
                "max": pooled.get("max"),
                "suppressed at": ", ".join(f"{p} ({entry['parties'][p]['suppressed']})" for p in entry["left_out"]),
            }
        )
    return pd.DataFrame(rows)


def histogram_frame(report: dict[str, Any], feature: str) -> pd.DataFrame:
    """The pooled histogram of ``feature``: one row per bin (its left edge, right edge and count)."""
    entry = report["features"][feature]
    counts = (entry["pooled"] or {}).get("histogram") or []
    edges = entry["edges"]
    return pd.DataFrame({"from": edges[:-1], "to": edges[1:], "count": counts}) if counts else pd.DataFrame()


def message_counts_frame(run: RunSummary) -> pd.DataFrame:
    """Per party, the run's refused and late messages (parties with none left out)."""
    parties = sorted({*run.rejected_messages, *run.late_messages})
    rows = [
        {"party": p, "rejected": run.rejected_messages.get(p, 0), "late": run.late_messages.get(p, 0)} for p in parties
    ]
    frame = pd.DataFrame(rows, columns=["party", "rejected", "late"])
    return frame[(frame["rejected"] > 0) | (frame["late"] > 0)].reset_index(drop=True)


def plan_decisions_frame(run: RunSummary) -> pd.DataFrame:
    """Each party's decision on the run plan: verdict, the policy rule a rejection names, the reason, by whom."""
    rows = [
        {
            "party": party,
            "decision": d.get("verdict"),
            "rule": d.get("rule") or "",
            "reason": d.get("reason", ""),
            "by": d.get("decided_by", ""),
        }
        for party, d in sorted(run.plan_decisions.items())
    ]
    return pd.DataFrame(rows, columns=["party", "decision", "rule", "reason", "by"])


def validation_frame(run: RunSummary) -> pd.DataFrame:
    """A run's validation summaries and the manifest hash (SHA-256 of the data file) of each party's dataset."""
    rows = []
    for party in sorted({*run.validation, *run.manifests}):
        summary = run.validation.get(party, {})
        outcomes = summary.get("outcomes", [])
        rows.append(
            {
                "party": party,
                "passed": summary.get("success"),
                "rows": summary.get("row_count"),
                "expectations": f"{sum(o['success'] for o in outcomes)}/{len(outcomes)}",
                "failed": ", ".join(_failed(outcomes)),
                "manifest": run.manifests.get(party, ""),
            }
        )
    return pd.DataFrame(rows, columns=["party", "passed", "rows", "expectations", "failed", "manifest"])


def _failed(outcomes: list[dict[str, Any]]) -> list[str]:
    return [o["expectation"] + (f"({o['column']})" if o.get("column") else "") for o in outcomes if not o["success"]]


def catalog_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Each party's latest validated dataset: manifest, contract, version and validation summary."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # newest run first: keep each party's first row
        latest.setdefault(row["party"], row)
    records = []
    for party, row in sorted(latest.items()):
        manifest, summary = row["manifest"], row["summary"]
        outcomes = summary.get("outcomes", [])
        records.append(
            {
                "party": party,
                "contract": manifest.get("contract", summary.get("contract")),
                "contract_version": manifest.get("contract_version", summary.get("version")),
                "rows": manifest.get("rows", summary.get("row_count")),
                "columns": len(manifest.get("columns", {})),
                "content_hash": manifest.get("content_hash", ""),
                "passed": bool(row["success"]),
                "expectations": f"{sum(o['success'] for o in outcomes)}/{len(outcomes)}",
                "failed": ", ".join(_failed(outcomes)),
                "validated_in": row["run_id"],
                "validated_at": _utc_wall_time(_parse_time(row["started_at"])),
            }
        )
    columns = ["party", "contract", "contract_version", "rows", "columns", "content_hash", "passed", "expectations"]
    return pd.DataFrame(records, columns=[*columns, "failed", "validated_in", "validated_at"])


def schema_of(rows: list[dict[str, Any]], party: str) -> pd.DataFrame:
    """The column names and dtypes of a party's latest manifest."""
    manifest = next((row["manifest"] for row in rows if row["party"] == party), {})
    return pd.DataFrame(list(manifest.get("columns", {}).items()), columns=["column", "dtype"])


def versions_frame(versions: Iterable[RegisteredVersion]) -> pd.DataFrame:
    """Registered versions with their aliases, metric and lineage (consortia run, MLflow run, manifests)."""
    rows = []
    for version in versions:
        metrics = {k.removeprefix("metric."): v for k, v in version.tags.items() if k.startswith("metric.")}
        manifests = {k.removeprefix("manifest."): v for k, v in version.tags.items() if k.startswith("manifest.")}
        tags = version.tags
        code = tags.get(lineage.CODE_VERSION, "")
        rows.append(
            {
                "model": version.name,
                "version": version.version,
                "aliases": ", ".join(version.aliases),
                "metrics": ", ".join(f"{k}={v}" for k, v in sorted(metrics.items())),
                "run_id": tags.get(lineage.RUN_ID, ""),
                "mlflow_run_id": version.run_id or "",
                "manifests": ", ".join(f"{p}:{h}" for p, h in sorted(manifests.items())),
                "contract": tags.get(lineage.CONTRACT, ""),
                "config_sha256": tags.get(lineage.CONFIG_SHA256, "")[:12],
                "code": (code[:12] if tags.get(lineage.CODE_SOURCE) == "git" else code)
                + ("+dirty" if tags.get(lineage.CODE_DIRTY) == "true" else ""),
                "dvc_revision": tags.get(lineage.DVC_REVISION, "")[:12],
            }
        )
    frame = pd.DataFrame(rows, columns=VERSION_COLUMNS)
    return frame.sort_values(["model", "version"], ascending=[True, False], ignore_index=True)


VERSION_COLUMNS = [
    "model",
    "version",
    "aliases",
    "metrics",
    "run_id",
    "mlflow_run_id",
    "manifests",
    "contract",
    "config_sha256",
    "code",
    "dvc_revision",
]


def version_label(version: RegisteredVersion) -> str:
    """``v3 @champion (accuracy=0.96, run RUN_ID)``: how a version is picked."""
    metrics = ", ".join(
        f"{k.removeprefix('metric.')}={float(v):.4g}" for k, v in version.tags.items() if k.startswith("metric.")
    )
    aliases = "".join(f" @{alias}" for alias in version.aliases)
    return f"v{version.version}{aliases} ({metrics}, run {version.tags.get(lineage.RUN_ID, '?')})"


def card_party_frame(card: ModelCard) -> pd.DataFrame:
    """The candidate's metrics per party (one row each), empty when it was not evaluated per party."""
    rows = [
        {"party": party, "rows": card.party_examples.get(party), **values}
        for party, values in sorted(card.party_metrics.items())
    ]
    return pd.DataFrame(rows)


def card_gaps_frame(card: ModelCard) -> pd.DataFrame:
    """The fairness gap of each metric the parties measured: the worst party against the weighted mean."""
    rows = [{"metric": metric, **gap.model_dump()} for metric, gap in sorted(card.fairness_gaps.items())]
    return pd.DataFrame(rows, columns=["metric", "gap", "worst_party", "worst_value", "weighted_mean"])


def card_data_frame(card: ModelCard) -> pd.DataFrame:
    """Each party's data behind the version: row counts claimed and validated, hashes (never values)."""
    return pd.DataFrame(
        [d.model_dump() for d in card.data],
        columns=["party", "rows_claimed", "rows_validated", "validation_passed", "manifest_sha256", "manifest_md5"],
    )


def version_metrics_frame(versions: Iterable[RegisteredVersion]) -> pd.DataFrame:
    """The metrics each version was registered with: (version, metric, value, aliases)."""
    rows = [
        {
            "version": v.version,
            "metric": key.removeprefix("metric."),
            "value": float(value),
            "aliases": ", ".join(v.aliases),
        }
        for v in versions
        for key, value in v.tags.items()
        if key.startswith("metric.")
    ]
    return pd.DataFrame(rows, columns=["version", "metric", "value", "aliases"])


def champions(versions: Iterable[RegisteredVersion], alias: str = "champion") -> list[RegisteredVersion]:
    """The versions the alias points to, one per model."""
    return [version for version in versions if alias in version.aliases]
