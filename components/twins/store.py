"""In-memory twin of the federation store (``StorePort`` plus the store's read methods); no SQLAlchemy.

``tables[name]`` is a list of row dicts with the real store's columns (``parties``, ``runs``, ``rounds``,
``contributions``, ``validations``, ``reputation_history``, ``party_stats``); JSON columns keep their JSON
round trip and the read methods return copies in the real store's order. Like the store it raises
``EdgeFailure("store", ...)`` for a missing NOT NULL value, an unknown column or a value JSON cannot hold.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from components.core.errors import EdgeFailure
from components.core.ports import key_digest
from components.twins.faults import FaultInjection, injectable

EDGE = "store"

# Column -> default for a column the insert leaves out (None: nullable without default).
PARTY_COLUMNS: dict[str, Any] = {
    "name": None,
    "public_key": None,
    "status": "offline",
    "last_seen": None,
    "resources": {},
    "manifest": {},
    "reputation": 0.5,
}
_NOT_NULL = {"parties": ("name", "public_key", "status", "reputation")}
TABLES = (
    "parties",
    "runs",
    "rounds",
    "contributions",
    "validations",
    "reputation_history",
    "party_stats",
    "departures",
)
_STAT_COLUMNS = ("rounds_joined", "rounds_missed", "rejected_messages")


def anonymous_name(party: str) -> str:
    """The name a party's run statistics keep after it left the federation (as the real store names it)."""
    return f"left-{hashlib.sha256(party.encode()).hexdigest()[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any, column: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise EdgeFailure(EDGE, f"column {column!r} cannot hold the value: {error}") from error


class MemoryStore(FaultInjection):
    """The federation's state as lists of row dicts in ``tables``."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}

    # writes

    @injectable
    def upsert_party(self, name: str, public_key: str, **fields: Any) -> None:
        unknown = sorted(set(fields) - set(PARTY_COLUMNS))
        if unknown:
            raise EdgeFailure(EDGE, f"Unconsumed column names: {', '.join(unknown)}")
        values = {"public_key": public_key, **fields}
        for column in ("resources", "manifest"):
            if column in values:
                values[column] = _json(values[column], column)
        row = self._party(name)
        candidate = {**(row or {**copy.deepcopy(PARTY_COLUMNS), "name": name}), **values}
        missing = [c for c in _NOT_NULL["parties"] if candidate[c] is None]
        if missing:
            raise EdgeFailure(EDGE, f"NOT NULL constraint failed: parties.{missing[0]}")
        if row is None:
            self.tables["parties"].append(candidate)
        else:
            row.update(candidate)

    @injectable
    def mark_party(self, name: str, status: str, resources: dict[str, Any] | None = None) -> None:
        row = self._party(name)
        if row is None:
            return  # an UPDATE of no row
        row.update(status=status, **({"last_seen": _now()} if status == "online" else {}))
        if resources is not None:
            row["resources"] = _json(resources, "resources")

    @injectable
    def delete_party(self, party: str) -> None:
        """A party left: delete its profile, key, manifests and history; keep run statistics, anonymised."""
        alias = anonymous_name(party)
        for table, column in (
            ("parties", "name"),
            ("validations", "party"),
            ("reputation_history", "party"),
            ("party_stats", "party"),
        ):
            self.tables[table] = [r for r in self.tables[table] if r[column] != party]
        for row in self.tables["contributions"]:
            if row["party"] == party:
                row["party"] = alias
        for row in self.tables["rounds"]:
            if party in row["participants"]:
                row["participants"] = [alias if p == party else p for p in row["participants"]]

    @injectable
    def start_run(self, run_id: str, federation: str, config: dict[str, Any]) -> None:
        existing = self._find("runs", run_id=run_id)
        if existing is not None:
            existing["status"] = "running"
            return
        self.tables["runs"].append(
            {
                "run_id": run_id,
                "federation": federation,
                "status": "running",
                "started_at": _now(),
                "finished_at": None,
                "mlflow_run_id": None,
                "summary_path": None,
                "config": json.loads(json.dumps(config, default=str)),
            }
        )

    @injectable
    def finish_run(self, run_id: str, status: str, mlflow_run_id: str | None, summary_path: str) -> None:
        row = self._find("runs", run_id=run_id)
        if row is not None:
            row.update(status=status, finished_at=_now(), mlflow_run_id=mlflow_run_id, summary_path=summary_path)

    @injectable
    def record_validation(
        self, run_id: str, party: str, success: bool, summary: dict[str, Any], manifest: dict[str, Any]
    ) -> None:
        row = {
            "run_id": run_id,
            "party": party,
            "success": int(success),
            "summary": _json(summary, "summary"),
            "manifest": _json(manifest, "manifest"),
        }
        self._replace("validations", row, ("run_id", "party"))

    @injectable
    def record_round(self, run_id: str, row: dict[str, Any]) -> None:
        metrics = row["metrics"]
        stored = {
            "run_id": run_id,
            "round": row["round"],
            "participants": _json(row["participants"], "participants"),
            "accuracy": metrics["accuracy"],
            "roc_auc": metrics["roc_auc"],
            "loss": metrics["loss"],
            "bytes_up": row["bytes_up"],
            "bytes_down": row["bytes_down"],
            "seconds": row["seconds"],
            "detail": _json({k: v for k, v in row.items() if k not in {"round", "participants", "metrics"}}, "detail"),
        }
        self._replace("rounds", stored, ("run_id", "round"))

    @injectable
    def record_contributions(
        self,
        run_id: str,
        round_number: int,
        values: Mapping[str, float],
        method: str,
        rewards: Mapping[str, float] | None = None,
    ) -> None:
        kept = [r for r in self.tables["contributions"] if (r["run_id"], r["round"]) != (run_id, round_number)]
        for party, value in values.items():
            kept.append(
                {
                    "run_id": run_id,
                    "round": round_number,
                    "party": party,
                    "value": float(value),
                    "reward": (rewards or {}).get(party),
                    "method": method,
                }
            )
        self.tables["contributions"] = kept

    @injectable
    def record_reputation(self, run_id: str, party: str, reputation: float, inputs: dict[str, Any]) -> None:
        """Store a party's new reputation, its history row, and add the run's counts to its totals."""
        counts = {
            "rounds_joined": inputs["rounds_answered"],
            "rounds_missed": inputs["rounds_missed"],
            "rejected_messages": inputs["rejected_messages"],
        }
        history = {
            "run_id": run_id,
            "party": party,
            "reputation": reputation,
            "inputs": _json(inputs, "inputs"),
            "recorded_at": _now(),
        }
        profile = self._party(party)
        if profile is not None:
            profile["reputation"] = reputation
        self._replace("reputation_history", history, ("run_id", "party"))
        totals = self._find("party_stats", party=party)
        if totals is None:
            self.tables["party_stats"].append({"party": party, **counts})
        else:
            totals.update({k: totals[k] + v for k, v in counts.items()})

    @injectable
    def record_departure(self, public_key: str) -> None:
        digest = key_digest(public_key)
        if self._find("departures", key_digest=digest) is None:
            self.tables["departures"].append({"key_digest": digest, "left_at": _now()})

    @injectable
    def readmit(self, public_key: str) -> bool:
        before = len(self.tables["departures"])
        self.tables["departures"] = [r for r in self.tables["departures"] if r["key_digest"] != key_digest(public_key)]
        return len(self.tables["departures"]) < before

    # reads

    @injectable
    def departed(self, public_keys: list[str]) -> set[str]:
        gone = {r["key_digest"] for r in self.tables["departures"]}
        return {key for key in public_keys if key_digest(key) in gone}

    @injectable
    def reputation_of(self, party: str) -> float:
        row = self._party(party)
        return float(row["reputation"]) if row else 0.5

    @injectable
    def party_rows(self) -> list[dict[str, Any]]:
        return self._sorted_parties()

    @injectable
    def party_overview(self) -> list[dict[str, Any]]:
        """Parties with their lifetime counts (None when a party has none yet)."""
        overview = []
        for row in self._sorted_parties():
            stats = self._find("party_stats", party=row["name"]) or {}
            overview.append({**row, **{column: stats.get(column) for column in _STAT_COLUMNS}})
        return overview

    @injectable
    def run_rows(self) -> list[dict[str, Any]]:
        return copy.deepcopy(sorted(self.tables["runs"], key=lambda r: r["started_at"], reverse=True))

    @injectable
    def reputation_rows(self) -> list[dict[str, Any]]:
        """Every party's reputation after each run, oldest first."""
        return copy.deepcopy(sorted(self.tables["reputation_history"], key=lambda r: (r["recorded_at"], r["party"])))

    @injectable
    def validation_rows(self) -> list[dict[str, Any]]:
        """Every party's validation in every run, with the run's start time, newest run first."""
        started = {r["run_id"]: r["started_at"] for r in self.tables["runs"]}
        rows = [{**copy.deepcopy(r), "started_at": started.get(r["run_id"])} for r in self.tables["validations"]]
        rows.sort(key=lambda r: r["party"])
        # newest first, rows of unknown runs (no start time) last, as SQL orders NULLs in a descending sort
        rows.sort(key=lambda r: (r["started_at"] is not None, r["started_at"] or datetime.min), reverse=True)
        return rows

    def _sorted_parties(self) -> list[dict[str, Any]]:
        return copy.deepcopy(sorted(self.tables["parties"], key=lambda r: r["name"]))

    def _party(self, name: str) -> dict[str, Any] | None:
        return self._find("parties", name=name)

    def _find(self, table: str, **key: Any) -> dict[str, Any] | None:
        return next((r for r in self.tables[table] if all(r[k] == v for k, v in key.items())), None)

    def _replace(self, table: str, row: dict[str, Any], key: tuple[str, ...]) -> None:
        """Delete the rows with ``row``'s key, then append ``row`` (the store's delete-then-insert)."""
        kept = [r for r in self.tables[table] if any(r[k] != row[k] for k in key)]
        self.tables[table] = [*kept, row]
