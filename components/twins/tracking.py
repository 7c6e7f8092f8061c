"""In-memory twins of the tracking and registry edges (``TrackerPort``, ``RegistryPort``); no MLflow, no torch.

Like the MLflow adapter, the tracker flattens nested params to dotted string keys and refuses to change a
param's value, keeps every metric per step, stringifies tags, keeps JSON artifacts as their JSON round trip
and keeps a logged model: what is served (``ServedModel``) and its weights, copied to numpy arrays.
``log_model`` returns a ``memory:/models/<n>`` URI that ``MemoryRegistry.register`` takes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.core.errors import EdgeFailure
from components.core.params import Params
from components.core.ports import RegisteredVersion, ServedModel, flatten_params
from components.twins.faults import FaultInjection, injectable

MODEL_URI_PREFIX = "memory:/models/"
RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")


@dataclass
class TrackedRun:
    """One tracked run: what was logged to it, as plain dicts."""

    run_id: str
    name: str
    status: str = "RUNNING"
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> key -> value
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # artifact file -> JSON object (str: a text file)


@dataclass
class LoggedModel:
    """A logged model: what is served, its weights (numpy copies), its feature columns and the run it belongs to."""

    uri: str
    name: str
    run_id: str
    state: dict[str, Any]  # parameter name -> array
    feature_names: list[str]
    served: ServedModel | None = None


class MemoryTracker(FaultInjection):
    """Tracks runs in dicts. ``params``, ``metrics``, ``tags``, ``artifacts`` and ``status`` are the active run's."""

    def __init__(self, experiment: str = "memory") -> None:
        super().__init__()
        self.experiment = experiment
        self.runs: dict[str, TrackedRun] = {}
        self.models: dict[str, LoggedModel] = {}  # URI -> model
        self._run_id: str | None = None

    @property
    def run(self) -> TrackedRun:
        """The active run (RuntimeError before ``start`` or ``resume``, like the adapter)."""
        if self._run_id is None:
            raise RuntimeError("no tracking run: call start() or resume() first")
        return self.runs[self._run_id]

    @property
    def params(self) -> dict[str, str]:
        return self.run.params

    @property
    def metrics(self) -> dict[int, dict[str, float]]:
        return self.run.metrics

    @property
    def tags(self) -> dict[str, str]:
        return self.run.tags

    @property
    def artifacts(self) -> dict[str, Any]:
        return self.run.artifacts

    @property
    def status(self) -> str:
        return self.run.status

    @injectable
    def start(self, run_name: str, tags: dict[str, str]) -> str:
        run_id = f"memory-run-{len(self.runs) + 1}"
        self.runs[run_id] = TrackedRun(run_id=run_id, name=run_name, tags={k: str(v) for k, v in tags.items()})
        self._run_id = run_id
        return run_id

    @injectable
    def resume(self, tracking_run_id: str) -> None:
        if tracking_run_id not in self.runs:
            raise EdgeFailure("tracking", f"RESOURCE_DOES_NOT_EXIST: Run with id={tracking_run_id} not found")
        self.runs[tracking_run_id].status = "RUNNING"
        self._run_id = tracking_run_id

    @injectable
    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = flatten_params(params)
        run = self.run
        changed = {k: (run.params[k], v) for k, v in flat.items() if k in run.params and run.params[k] != v}
        if changed:
            raise EdgeFailure("tracking", f"INVALID_PARAMETER_VALUE: Changing param values is not allowed: {changed}")
        run.params.update(flat)

    @injectable
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.metrics.setdefault(step, {}).update({key: float(value) for key, value in metrics.items()})

    @injectable
    def logged_steps(self, key: str) -> set[int]:
        return {step for step, values in self.run.metrics.items() if key in values}

    @injectable
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.run.tags.update({key: str(value) for key, value in tags.items()})

    @injectable
    def log_json(self, obj: dict[str, Any], artifact_file: str) -> None:
        self.run.artifacts[artifact_file] = json.loads(json.dumps(obj))  # TypeError when not JSON, like MLflow

    @injectable
    def log_text(self, text: str, artifact_file: str) -> None:
        self.run.artifacts[artifact_file] = str(text)

    @injectable
    def log_model(self, served: ServedModel, params: Params, example: Any, name: str = "model") -> str:
        """Keep ``served`` and ``params`` (numpy copies); returns ``memory:/models/<n>``.

        Like the adapter, refuses an example without a row of the named feature columns or with a non-numeric one.
        """
        run_id = self.run.run_id
        columns = [str(c) for c in getattr(example, "columns", [])]
        missing = [name for name in served.features if name not in columns]
        if len(example) == 0 or missing:
            raise ValueError(f"log_model needs an example with at least one row of the features, lacking {missing}")
        not_numeric = [f for f in served.features if not np.issubdtype(np.asarray(example[f]).dtype, np.number)]
        if not_numeric:
            raise ValueError(f"example feature columns must be numeric: {not_numeric}")
        uri = f"{MODEL_URI_PREFIX}{len(self.models) + 1}"
        state = {key: _copied(value) for key, value in params.items()}
        self.models[uri] = LoggedModel(
            uri=uri,
            name=name,
            run_id=run_id,
            state=state,
            feature_names=list(served.features),
            served=served.model_copy(deep=True),
        )
        return uri

    @injectable
    def finish(self, status: str = "FINISHED") -> None:
        if status not in RUN_STATUSES:
            raise EdgeFailure("tracking", f"INVALID_PARAMETER_VALUE: unknown run status {status!r}")
        self.run.status = status


class MemoryRegistry(FaultInjection):
    """Registered versions and aliases in dicts; give it the ``MemoryTracker`` whose models it registers.

    ``registered[name]`` lists the versions (oldest first, ``aliases`` left empty), ``aliases[name][alias]``
    is a version number and ``sources[(name, version)]`` the model URI. Read methods fill in the aliases.
    """

    def __init__(self, tracker: MemoryTracker | None = None) -> None:
        super().__init__()
        self.tracker = tracker
        self.registered: dict[str, list[RegisteredVersion]] = {}
        self.aliases: dict[str, dict[str, int]] = {}
        self.sources: dict[tuple[str, int], str] = {}

    @injectable
    def register(self, model_uri: str, name: str, tags: dict[str, str], description: str = "") -> int:
        """A new version of ``name`` (created on first use); with a tracker, the URI must be one it logged."""
        run_id: str | None = None
        if self.tracker is not None:
            model = self.tracker.models.get(model_uri)
            if model is None:
                raise EdgeFailure("registry", f"RESOURCE_DOES_NOT_EXIST: no logged model {model_uri}")
            run_id = model.run_id
        versions = self.registered.setdefault(name, [])
        self.aliases.setdefault(name, {})
        version = len(versions) + 1
        versions.append(
            RegisteredVersion(
                name=name,
                version=version,
                run_id=run_id,
                tags={k: str(v) for k, v in tags.items()},
                description=description,
            )
        )
        self.sources[(name, version)] = model_uri
        return version

    @injectable
    def version_by_alias(self, name: str, alias: str) -> RegisteredVersion | None:
        version = self.aliases.get(name, {}).get(alias)
        return None if version is None else self._with_aliases(self.registered[name][version - 1])

    @injectable
    def set_alias(self, name: str, alias: str, version: int) -> None:
        if not 1 <= version <= len(self.registered.get(name, [])):
            raise EdgeFailure("registry", f"RESOURCE_DOES_NOT_EXIST: {name} has no version {version}")
        self.aliases[name][alias] = version

    @injectable
    def delete_alias(self, name: str, alias: str) -> None:
        self.aliases.get(name, {}).pop(alias, None)

    @injectable
    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self._version(name, version).tags.update({k: str(v) for k, v in tags.items()})

    @injectable
    def delete_version_tags(self, name: str, version: int, keys: Sequence[str]) -> None:
        found = self._version(name, version)
        for key in keys:
            found.tags.pop(key, None)

    def _version(self, name: str, version: int) -> RegisteredVersion:
        if not 1 <= version <= len(self.registered.get(name, [])):
            raise EdgeFailure("registry", f"RESOURCE_DOES_NOT_EXIST: {name} has no version {version}")
        return self.registered[name][version - 1]

    @injectable
    def versions(self, name: str) -> list[RegisteredVersion]:
        """Every version of ``name``, oldest first (empty when the model is not registered)."""
        return [self._with_aliases(v) for v in self.registered.get(name, [])]

    def _with_aliases(self, version: RegisteredVersion) -> RegisteredVersion:
        names = sorted(a for a, v in self.aliases.get(version.name, {}).items() if v == version.version)
        return version.model_copy(update={"aliases": names}, deep=True)


def _copied(value: Any) -> Any:
    """An array (or a tensor: anything with ``detach``) as a numpy copy; other values deep-copied."""
    if hasattr(value, "detach"):
        return np.array(value.detach().cpu().numpy(), copy=True)
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    return copy.deepcopy(value)
