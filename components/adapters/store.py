"""The federation store (the only module importing sqlalchemy): parties, runs, rounds, contributions.

SQLite in the workspace by default; any SQLAlchemy URL (e.g. PostgreSQL) works the same.

Every public method raises SQLAlchemy's errors as Consortia's: ``EdgeUnavailable("store", ...)`` when a
retry may cure them (a locked or busy database, a dropped or refused connection, a deadlock, a pool
timeout), ``EdgeFailure("store", ...)`` otherwise (a bad URL, a constraint or schema error, SQL errors).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from components.core.errors import (
    PERMANENT_OS_ERRORS,
    ConsortiaError,
    EdgeFailure,
    EdgeUnavailable,
    first_line,
    raising_consortia_errors,
)
from components.core.ports import key_digest

EDGE = "store"

metadata = MetaData()

parties = Table(
    "parties",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("public_key", String(40), nullable=False),
    Column("status", String(16), nullable=False, default="offline"),
    Column("last_seen", DateTime(timezone=True)),
    Column("resources", JSON, default=dict),
    Column("manifest", JSON, default=dict),
    Column("reputation", Float, nullable=False, default=0.5),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("federation", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("mlflow_run_id", String(64)),
    Column("summary_path", String(512)),
    Column("config", JSON, default=dict),
)

rounds = Table(
    "rounds",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("participants", JSON, nullable=False),
    Column("accuracy", Float),
    Column("roc_auc", Float),
    Column("loss", Float),
    Column("bytes_up", Integer),
    Column("bytes_down", Integer),
    Column("seconds", Float),
    Column("detail", JSON, default=dict),
)

contributions = Table(
    "contributions",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("round", Integer, primary_key=True),  # 0 holds the run's total
    Column("party", String(64), primary_key=True),
    Column("value", Float, nullable=False),
    Column("reward", Float),
    Column("method", String(32)),
)

validations = Table(
    "validations",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("party", String(64), primary_key=True),
    Column("success", Integer, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("manifest", JSON, nullable=False),
)


reputation_history = Table(
    "reputation_history",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("party", String(64), primary_key=True),
    Column("reputation", Float, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

party_stats = Table(
    "party_stats",
    metadata,
    Column("party", String(64), primary_key=True),
    Column("rounds_joined", Integer, nullable=False, default=0),
    Column("rounds_missed", Integer, nullable=False, default=0),
    Column("rejected_messages", Integer, nullable=False, default=0),
)

departures = Table(
    "departures",
    metadata,
    Column("key_digest", String(64), primary_key=True),  # SHA-256 of the public key: the key itself is deleted
    Column("left_at", DateTime(timezone=True), nullable=False),
)


flow_runs = Table(  # how each Prefect flow run of a federation run ended (its completion/failure/crash hooks)
    "flow_runs",
    metadata,
    Column("flow_run_id", String(36), primary_key=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),  # COMPLETED | FAILED | CRASHED
    Column("message", String(2000)),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


def anonymous_name(party: str) -> str:
    """The name a party's run statistics keep after it left the federation."""
    return f"left-{hashlib.sha256(party.encode()).hexdigest()[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


# Driver messages (SQLite, PostgreSQL, MySQL) of faults a retry may cure, lower case.
_TRANSIENT_MARKERS = (
    "locked",  # sqlite "database is locked", "database table is locked"
    "busy",
    "lock wait timeout",
    "deadlock",
    "could not serialize access",
    "could not connect",
    "connection refused",
    "connection reset",
    "server closed",
    "terminating connection",
    "the database system is starting up",
    "too many connections",
    "gone away",
    "lost connection",
    "timeout expired",
    "timed out",
)


# OS errors that say the path or its permissions are wrong: retrying cannot cure them.
def _store_error(error: Exception) -> ConsortiaError | None:
    """Consortia's error for a SQLAlchemy (or OS) error; None for errors that are not the store's."""
    if isinstance(error, sa_exc.DBAPIError):
        message = first_line(error)  # "(sqlite3.OperationalError) database is locked": no SQL, no parameters
        if error.connection_invalidated:
            return EdgeUnavailable(EDGE, f"connection lost: {message}")
        permanent = (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.DataError, sa_exc.NotSupportedError)
        if not isinstance(error, permanent) and any(m in str(error.orig).lower() for m in _TRANSIENT_MARKERS):
            return EdgeUnavailable(EDGE, message)
        return EdgeFailure(EDGE, message)
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):  # pool exhausted, connection dropped
        return EdgeUnavailable(EDGE, first_line(error))
    if isinstance(error, sa_exc.SQLAlchemyError):  # ArgumentError (bad URL), CompileError, StatementError, ...
        return EdgeFailure(EDGE, first_line(error))
    if isinstance(error, PERMANENT_OS_ERRORS):
        return EdgeFailure(EDGE, first_line(error))
    if isinstance(error, OSError):
        return EdgeUnavailable(EDGE, first_line(error))
    return None


@raising_consortia_errors(_store_error)
class FederationStore:
    """Typed reads and writes of the federation's state.

    ``busy_timeout_s`` is how long a SQLite write waits for another writer's lock before it fails with
    ``EdgeUnavailable`` (the flow retries the task); other databases ignore it.
    """

    def __init__(self, url: str, busy_timeout_s: float = 5.0) -> None:
        sqlite = url.startswith("sqlite")
        connect_args = {"timeout": busy_timeout_s} if sqlite else {}
        self.engine: Engine = create_engine(url, future=True, connect_args=connect_args)
        if sqlite:
            event.listen(self.engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout_s=busy_timeout_s))
        metadata.create_all(self.engine)

    def upsert_party(self, name: str, public_key: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(select(parties.c.name).where(parties.c.name == name)).first()
            values = {"public_key": public_key, **fields}
            if exists:
                conn.execute(parties.update().where(parties.c.name == name).values(**values))
            else:
                conn.execute(parties.insert().values(name=name, **values))

    def mark_party(self, name: str, status: str, resources: dict[str, Any] | None = None) -> None:
        """Set a party's status; ``last_seen`` moves only when it is seen (online), so it stays its last heartbeat."""
        values: dict[str, Any] = {"status": status, **({"last_seen": _now()} if status == "online" else {})}
        if resources is not None:
            values["resources"] = resources
        with self.engine.begin() as conn:
            conn.execute(parties.update().where(parties.c.name == name).values(**values))

    def start_run(self, run_id: str, federation: str, config: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            if conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first():
                conn.execute(runs.update().where(runs.c.run_id == run_id).values(status="running"))
            else:
                conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        federation=federation,
                        status="running",
                        started_at=_now(),
                        config=json.loads(json.dumps(config, default=str)),
                    )
                )

    def finish_run(self, run_id: str, status: str, mlflow_run_id: str | None, summary_path: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(
                    status=status,
                    finished_at=_now(),
                    mlflow_run_id=mlflow_run_id,
                    summary_path=summary_path,
                )
            )

    def record_flow_run(self, run_id: str, flow_run_id: str, state: str, message: str | None) -> None:
        """How Prefect flow run ``flow_run_id`` of ``run_id`` ended; a run still marked running is marked failed
        unless the flow run completed (a crash can end a run before it recorded its failure)."""
        with self.engine.begin() as conn:
            conn.execute(delete(flow_runs).where(flow_runs.c.flow_run_id == flow_run_id))
            conn.execute(
                flow_runs.insert().values(
                    flow_run_id=flow_run_id,
                    run_id=run_id,
                    state=state,
                    message=(message or "")[:2000] or None,
                    recorded_at=_now(),
                )
            )
            if state != "COMPLETED":
                conn.execute(
                    runs.update()
                    .where((runs.c.run_id == run_id) & (runs.c.status == "running"))
                    .values(status="failed", finished_at=_now())
                )

    def flow_run_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The Prefect flow runs of ``run_id`` and how each ended, oldest first."""
        query = select(flow_runs).where(flow_runs.c.run_id == run_id).order_by(flow_runs.c.recorded_at)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def record_validation(
        self,
        run_id: str,
        party: str,
        success: bool,
        summary: dict[str, Any],
        manifest: dict[str, Any],
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(validations).where((validations.c.run_id == run_id) & (validations.c.party == party)))
            conn.execute(
                validations.insert().values(
                    run_id=run_id,
                    party=party,
                    success=int(success),
                    summary=summary,
                    manifest=manifest,
                )
            )

    def record_round(self, run_id: str, row: dict[str, Any]) -> None:
        metrics = row["metrics"]
        with self.engine.begin() as conn:
            conn.execute(delete(rounds).where((rounds.c.run_id == run_id) & (rounds.c.round == row["round"])))
            conn.execute(
                rounds.insert().values(
                    run_id=run_id,
                    round=row["round"],
                    participants=row["participants"],
                    accuracy=metrics["accuracy"],
                    roc_auc=metrics["roc_auc"],
                    loss=metrics["loss"],
                    bytes_up=row["bytes_up"],
                    bytes_down=row["bytes_down"],
                    seconds=row["seconds"],
                    detail={k: v for k, v in row.items() if k not in {"round", "participants", "metrics"}},
                )
            )

    def record_contributions(
        self,
        run_id: str,
        round_number: int,
        values: Mapping[str, float],
        method: str,
        rewards: Mapping[str, float] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(contributions).where(
                    (contributions.c.run_id == run_id) & (contributions.c.round == round_number)
                )
            )
            for party, value in values.items():
                conn.execute(
                    contributions.insert().values(
                        run_id=run_id,
                        round=round_number,
                        party=party,
                        value=float(value),
                        reward=(rewards or {}).get(party),
                        method=method,
                    )
                )

    def record_reputation(self, run_id: str, party: str, reputation: float, inputs: dict[str, Any]) -> None:
        """Store a party's new reputation, its history row, and add the run's counts to its totals."""
        with self.engine.begin() as conn:
            conn.execute(parties.update().where(parties.c.name == party).values(reputation=reputation))
            conn.execute(
                delete(reputation_history).where(
                    (reputation_history.c.run_id == run_id) & (reputation_history.c.party == party)
                )
            )
            conn.execute(
                reputation_history.insert().values(
                    run_id=run_id, party=party, reputation=reputation, inputs=inputs, recorded_at=_now()
                )
            )
            totals = conn.execute(select(party_stats).where(party_stats.c.party == party)).first()
            counts = {
                "rounds_joined": inputs["rounds_answered"],
                "rounds_missed": inputs["rounds_missed"],
                "rejected_messages": inputs["rejected_messages"],
            }
            if totals is None:
                conn.execute(party_stats.insert().values(party=party, **counts))
            else:
                conn.execute(
                    party_stats.update()
                    .where(party_stats.c.party == party)
                    .values(**{k: getattr(totals, k) + v for k, v in counts.items()})
                )

    def reputation_of(self, party: str) -> float:
        with self.engine.connect() as conn:
            row = conn.execute(select(parties.c.reputation).where(parties.c.name == party)).first()
        return float(row.reputation) if row else 0.5

    def delete_party(self, party: str) -> None:
        """A party left: delete its profile, key, manifests and history; keep run statistics, anonymised."""
        alias = anonymous_name(party)
        with self.engine.begin() as conn:
            conn.execute(delete(parties).where(parties.c.name == party))
            conn.execute(delete(validations).where(validations.c.party == party))
            conn.execute(delete(reputation_history).where(reputation_history.c.party == party))
            conn.execute(delete(party_stats).where(party_stats.c.party == party))
            conn.execute(contributions.update().where(contributions.c.party == party).values(party=alias))
            for row in conn.execute(select(rounds.c.run_id, rounds.c.round, rounds.c.participants)).all():
                if party in row.participants:
                    named = [alias if p == party else p for p in row.participants]
                    conn.execute(
                        rounds.update()
                        .where((rounds.c.run_id == row.run_id) & (rounds.c.round == row.round))
                        .values(participants=named)
                    )

    def record_departure(self, public_key: str) -> None:
        """A party left: its key is refused by every later run until ``readmit``."""
        digest = key_digest(public_key)
        with self.engine.begin() as conn:
            if conn.execute(select(departures.c.key_digest).where(departures.c.key_digest == digest)).first() is None:
                conn.execute(departures.insert().values(key_digest=digest, left_at=_now()))

    def departed(self, public_keys: list[str]) -> set[str]:
        """The keys among ``public_keys`` whose party left and was not re-admitted."""
        digests = {key_digest(key): key for key in public_keys}
        query = select(departures.c.key_digest).where(departures.c.key_digest.in_(list(digests)))
        with self.engine.connect() as conn:
            return {digests[row.key_digest] for row in conn.execute(query)}

    def readmit(self, public_key: str) -> bool:
        """Admit a party that left again (the MLOps engineer's decision); False if it had not left."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(departures).where(departures.c.key_digest == key_digest(public_key)))
        return bool(result.rowcount)

    def party_overview(self) -> list[dict[str, Any]]:
        """Parties with their lifetime counts (for ``consortia parties`` and the dashboard)."""
        query = (
            select(parties, party_stats.c.rounds_joined, party_stats.c.rounds_missed, party_stats.c.rejected_messages)
            .select_from(parties.outerjoin(party_stats, parties.c.name == party_stats.c.party))
            .order_by(parties.c.name)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def party_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(parties).order_by(parties.c.name))]

    def run_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(runs).order_by(runs.c.started_at.desc()))]

    def reputation_rows(self) -> list[dict[str, Any]]:
        """Every party's reputation after each run, oldest first."""
        query = select(reputation_history).order_by(reputation_history.c.recorded_at, reputation_history.c.party)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def validation_rows(self) -> list[dict[str, Any]]:
        """Every party's validation in every run, with the run's start time, newest run first."""
        query = (
            select(validations, runs.c.started_at)
            .join(runs, runs.c.run_id == validations.c.run_id, isouter=True)
            .order_by(runs.c.started_at.desc(), validations.c.party)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_timeout_s: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={max(0, round(busy_timeout_s * 1000))}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL's recommended setting: a commit is not fsynced, yet the database survives a crash of any process
    # consistent (a power cut may lose the last commits, which a resume redoes from the checkpoints)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
