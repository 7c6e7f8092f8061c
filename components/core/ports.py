"""The small interfaces a run talks to at its edges; adapters implement them, twins stand in for tests.

Like httpx's ``BaseTransport`` and ``MockTransport``: the run depends only on these protocols; the
composition root (``components.run.edges``) picks the real adapters (``components.adapters``) or
the in-memory twins (``components.twins``). Every adapter raises only Consortia's error tree
(``EdgeUnavailable`` for what a retry may cure, ``EdgeFailure`` for what it cannot).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field, model_validator

from components.core.params import Params
from components.core.tasks import TaskKind, is_classification


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 text (40 characters each)."""

    public: str
    secret: str


@dataclass(frozen=True)
class Peer:
    """Who sent a message: the router's routing id and the public key the transport authenticated."""

    routing_id: bytes
    public_key: str


class RouterPort(Protocol):
    """The coordinator's bound socket, served by one I/O thread that calls ``on_message`` per message."""

    endpoint: str

    def send(self, routing_id: bytes, frames: Sequence[Any]) -> None:
        """Queue a message for a peer; never blocks on a peer that stops reading."""
        ...

    def close(self) -> None: ...


class RouterFactory(Protocol):
    def __call__(
        self,
        bind: str,
        keys: KeyPair,
        is_allowed: Callable[[str], bool],
        on_message: Callable[[Peer, list[Any]], None],
        max_message_bytes: int = ...,
    ) -> RouterPort: ...


class DealerPort(Protocol):
    """A party's connection to the coordinator."""

    def send(self, frames: Sequence[Any]) -> None: ...

    def receive(self, timeout_s: float) -> list[Any] | None: ...

    def close(self) -> None: ...


DealerFactory = Callable[[str, str, KeyPair], DealerPort]  # (address, server public key, own keys)


class RegisteredVersion(BaseModel):
    """One version of a registered model, as the promotion gate and dashboard need it."""

    name: str
    version: int
    run_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    description: str = ""  # the model card, in Markdown


class ServedModel(BaseModel):
    """What the registry serves: which model to build, the columns it reads and what it answers.

    ``spec`` is the ``ModelSpec`` as JSON (``spec.model_dump(mode="json")``); the weights travel beside it.
    A served model takes a frame with the ``features`` columns (by name, in any order; ``dtypes`` are the
    contract's, ``float64`` where not given) and answers one probability column per class name in
    ``classes`` (classification) or one ``prediction`` column (regression, ``classes`` empty).
    """

    spec: dict[str, Any]
    features: list[str] = Field(min_length=1)
    classes: list[str] = Field(default_factory=list)
    task: TaskKind = "multiclass"
    dtypes: dict[str, str] = Field(default_factory=dict)  # feature -> the contract's dtype (float64, int64)

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> ServedModel:
        for what, names in (("feature", self.features), ("class", self.classes)):
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"repeated {what} names: {repeated}")
        if is_classification(self.task) and len(self.classes) < 2:
            raise ValueError(f"a {self.task} model needs at least two class names, got {self.classes}")
        if not is_classification(self.task) and self.classes:
            raise ValueError(f"a regression model has no classes, got {self.classes}")
        unknown = sorted(set(self.dtypes) - set(self.features))
        if unknown:
            raise ValueError(f"dtypes of columns that are not features: {unknown}")
        return self

    def dtype(self, feature: str) -> str:
        return self.dtypes.get(feature, "float64")

    @property
    def outputs(self) -> list[str]:
        """The columns ``predict`` answers: the class names, or ``["prediction"]``."""
        return list(self.classes) if is_classification(self.task) else ["prediction"]


def key_digest(public_key: str) -> str:
    """What the store keeps of a departed party's key: its SHA-256, enough to refuse the key, not to use it."""
    return hashlib.sha256(public_key.encode()).hexdigest()


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys, every value as a string: ``{"a": {"b": 1}} -> {"a.b": "1"}`` (how
    trackers log params)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class TrackerPort(Protocol):
    """One experiment-tracking run at a time: params, metrics, tags, JSON artifacts and the model."""

    def start(self, run_name: str, tags: dict[str, str]) -> str: ...

    def resume(self, tracking_run_id: str) -> None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """May return before the metrics are stored; ``logged_steps`` and ``finish`` wait for them."""
        ...

    def logged_steps(self, key: str) -> set[int]: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_json(self, obj: dict[str, Any], artifact_file: str) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_model(self, served: ServedModel, params: Params, example: Any, name: str = "model") -> str:
        """Log a servable model (what it is, its weights, a few example input rows); returns a URI to register."""
        ...

    def finish(self, status: str = "FINISHED") -> None: ...


class RegistryPort(Protocol):
    """Registered model versions and their aliases."""

    def register(self, model_uri: str, name: str, tags: dict[str, str], description: str = "") -> int:
        """A new version of ``name`` with its tags and description, in one step; returns its number."""
        ...

    def version_by_alias(self, name: str, alias: str) -> RegisteredVersion | None: ...

    def set_alias(self, name: str, alias: str, version: int) -> None: ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` (nothing happens when it does not exist)."""
        ...

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None: ...

    def delete_version_tags(self, name: str, version: int, keys: Sequence[str]) -> None:
        """Remove these tags of the version (keys it lacks are skipped)."""
        ...

    def versions(self, name: str) -> list[RegisteredVersion]:
        """Every version of ``name``, oldest first (empty when the model is not registered)."""
        ...


class StorePort(Protocol):
    """What a run writes to (and reads from) the federation store."""

    def upsert_party(self, name: str, public_key: str, **fields: Any) -> None: ...

    def mark_party(self, name: str, status: str, resources: dict[str, Any] | None = None) -> None: ...

    def delete_party(self, party: str) -> None: ...

    def start_run(self, run_id: str, federation: str, config: dict[str, Any]) -> None: ...

    def finish_run(self, run_id: str, status: str, mlflow_run_id: str | None, summary_path: str) -> None: ...

    def record_validation(
        self, run_id: str, party: str, success: bool, summary: dict[str, Any], manifest: dict[str, Any]
    ) -> None: ...

    def record_round(self, run_id: str, row: dict[str, Any]) -> None: ...

    def record_contributions(
        self,
        run_id: str,
        round_number: int,
        values: Mapping[str, float],
        method: str,
        rewards: Mapping[str, float] | None = None,
    ) -> None: ...

    def record_reputation(self, run_id: str, party: str, reputation: float, inputs: dict[str, Any]) -> None: ...

    def record_departure(self, public_key: str) -> None: ...

    def departed(self, public_keys: list[str]) -> set[str]: ...

    def reputation_of(self, party: str) -> float: ...

    def party_rows(self) -> list[dict[str, Any]]: ...


class MetadataPort(Protocol):
    """Versioned run metadata (manifests, contracts, final models): content hashes, pushed to a remote."""

    def track(self, path: Path) -> str: ...

    def track_all(self, paths: Sequence[Path]) -> dict[Path, str]:
        """Track several files at once (path -> content hash): a thousand parties' manifests in one go."""
        ...

    def push(self) -> int: ...

    def untrack(self, path: Path) -> None:
        """Stop versioning ``path`` (its ``.dvc`` record goes; the file stays); nothing happens if untracked."""
        ...
