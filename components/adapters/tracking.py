"""Experiment tracking and the model registry on MLflow (the only MLflow importer).

With the embedded default the tracking URI is ``sqlite:////abs/path/mlflow.db`` and artifacts go to the
``artifacts`` folder next to the database. Models are logged in PyTorch's ``pt2`` format (``torch.export``,
no pickle) with a tensor signature, so ``mlflow.pyfunc.load_model`` serves them without this package.

Every public method raises MLflow's errors as Consortia's, naming the edge (``tracking`` or ``registry``):
``EdgeUnavailable`` for a server that is down, busy or unreachable (MLflow error codes
TEMPORARILY_UNAVAILABLE, INTERNAL_ERROR, REQUEST_LIMIT_EXCEEDED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
ABORTED; connection errors and timeouts; a locked SQLite store surfaces as TEMPORARILY_UNAVAILABLE),
``EdgeFailure`` for everything else (INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, BAD_REQUEST,
an invalid URL, ...). Missing models and aliases that the API answers with None or [] stay so.
"""

from __future__ import annotations

import os

# Flags MLflow reads at import time: no usage telemetry, no INFO chatter (schema migrations), no progress bars.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import functools  # noqa: E402
import inspect  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import mlflow  # noqa: E402
import mlflow.pytorch  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402
from mlflow.exceptions import InvalidUrlException, MlflowException  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from mlflow.protos.databricks_pb2 import (  # noqa: E402
    ABORTED,
    DEADLINE_EXCEEDED,
    INTERNAL_ERROR,
    REQUEST_LIMIT_EXCEEDED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    RESOURCE_EXHAUSTED,
    TEMPORARILY_UNAVAILABLE,
    ErrorCode,
)

from components.core.errors import ConsortiaError, EdgeFailure, EdgeUnavailable  # noqa: E402
from components.core.ports import RegisteredVersion  # noqa: E402  (re-exported: app.queries imports it here)

_SQLITE_PREFIX = "sqlite:///"

# MLflow error codes of faults a retry may cure; every other code is permanent.
_TRANSIENT_CODES = frozenset(
    ErrorCode.Name(code)
    for code in (
        TEMPORARILY_UNAVAILABLE,  # also a locked or unreachable SQL store behind MLflow
        INTERNAL_ERROR,  # also what MLflow raises when an HTTP request fails after its own retries
        REQUEST_LIMIT_EXCEEDED,
        DEADLINE_EXCEEDED,
        RESOURCE_EXHAUSTED,
        ABORTED,
    )
)
# OS errors that say a path or its permissions are wrong: retrying cannot cure them.
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _tracking_error(edge: str, error: Exception) -> ConsortiaError | None:
    """Consortia's error for an MLflow, HTTP or OS error; None for errors that are not the edge's."""
    if isinstance(error, InvalidUrlException):
        return EdgeFailure(edge, error.message)
    if isinstance(error, MlflowException):
        kind = EdgeUnavailable if error.error_code in _TRANSIENT_CODES else EdgeFailure
        return kind(edge, f"{error.error_code}: {error.message}")
    if isinstance(error, _PERMANENT_OS_ERRORS):
        return EdgeFailure(edge, f"{type(error).__name__}: {error}")
    if isinstance(error, OSError):  # requests' ConnectionError and Timeout are OSErrors, and so is TimeoutError
        # ... but requests' InvalidURL, MissingSchema and InvalidSchema are ValueErrors too: a bad URI stays bad
        kind = EdgeFailure if isinstance(error, ValueError) else EdgeUnavailable
        return kind(edge, f"{type(error).__name__}: {error}")
    return None


_Class = TypeVar("_Class", bound=type)


def _edge(name: str) -> Callable[[_Class], _Class]:
    """Wrap ``__init__`` and every public method of a class so they raise only Consortia's errors."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def translated(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except ConsortiaError:
                raise
            except Exception as error:
                mapped = _tracking_error(name, error)
                if mapped is None:
                    raise
                raise mapped from error

        return translated

    def decorate(cls: _Class) -> _Class:
        for attribute, member in list(vars(cls).items()):
            if inspect.isfunction(member) and (attribute == "__init__" or not attribute.startswith("_")):
                setattr(cls, attribute, wrap(member))
        return cls

    return decorate


def _artifact_location(tracking_uri: str) -> str | None:
    """``file://`` URI of the ``artifacts`` folder beside a SQLite store; None (server default) otherwise."""
    if not tracking_uri.startswith(_SQLITE_PREFIX):
        return None
    database = Path(tracking_uri.removeprefix(_SQLITE_PREFIX)).resolve()
    return (database.parent / "artifacts").as_uri()


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys, every value as a string: ``{"a": {"b": 1}} -> {"a.b": "1"}``."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@_edge("tracking")
class RunTracker:
    """One MLflow run at a time in one experiment: params, metrics, tags, JSON artifacts and the model."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client = MlflowClient(tracking_uri)
        self._run_id: str | None = None
        self._experiment_id: str | None = None

    def start(self, run_name: str, tags: dict[str, str]) -> str:
        """Create a run in the experiment (created on first use); returns the MLflow run id."""
        self._experiment_id = self._experiment_id_for(self.experiment)
        run = self._client.create_run(self._experiment_id, run_name=run_name, tags=tags)
        self._run_id = run.info.run_id
        return self._run_id

    def resume(self, tracking_run_id: str) -> None:
        """Continue logging to an existing MLflow run, marking it running again if it had ended."""
        run = self._client.get_run(tracking_run_id)
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            self._client.update_run(tracking_run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        self._run_id = tracking_run_id
        self._experiment_id = run.info.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; nested dicts become dotted keys and values are stringified."""
        self._client.log_batch(self._active_run_id(), params=[Param(k, v) for k, v in _flatten(params).items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self._client.log_batch(self._active_run_id(), metrics=batch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.log_batch(self._active_run_id(), tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_json(self, obj: dict[str, Any], artifact_file: str) -> None:
        self._client.log_dict(self._active_run_id(), obj, artifact_file)

    def log_model(self, module: torch.nn.Module, example: pd.DataFrame, name: str = "model") -> str:
        """Log ``module`` (whose forward returns class probabilities); returns a URI pyfunc can load.

        The model is exported with ``torch.export`` from ``example`` (numeric columns, one dtype) and
        carries a tensor signature inferred from the example and the module's output: pyfunc's predict
        takes a DataFrame with the example's columns and dtype and returns a probability array.
        """
        run_id = self._active_run_id()
        inputs = _tracing_input(example)
        with torch.no_grad():
            outputs = module(torch.from_numpy(inputs)).numpy()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(experiment_id=self._experiment_id)
        info = mlflow.pytorch.log_model(
            module,
            name=name,
            run_id=run_id,
            signature=infer_signature(inputs, outputs),
            input_example=inputs,
            serialization_format="pt2",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata={"feature_names": [str(c) for c in example.columns]},
        )
        return info.model_uri

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        self._client.set_terminated(self._active_run_id(), status=status)

    def _active_run_id(self) -> str:
        if self._run_id is None:
            raise RuntimeError("no MLflow run: call start() or resume() first")
        return self._run_id

    def _experiment_id_for(self, name: str) -> str:
        existing = self._client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        try:
            return self._client.create_experiment(name, artifact_location=_artifact_location(self.tracking_uri))
        except MlflowException as error:  # created meanwhile by another process
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            return self._client.get_experiment_by_name(name).experiment_id


@_edge("registry")
class ModelRegistry:
    """Registered models, their versions and aliases (``champion``) in MLflow's registry."""

    def __init__(self, tracking_uri: str) -> None:
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def register(self, model_uri: str, name: str, tags: dict[str, str]) -> int:
        """Add ``model_uri`` (a ``models:/<model_id>`` URI from ``RunTracker.log_model``) as a new version."""
        try:
            self._client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        model_id = _logged_model_id(model_uri)
        run_id = self._client.get_logged_model(model_id).source_run_id if model_id else None
        version = self._client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
        return int(version.version)

    def version_by_alias(self, name: str, alias: str) -> RegisteredVersion | None:
        """The version ``alias`` points to, or None when the model or the alias does not exist."""
        try:
            model = self._client.get_registered_model(name)
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return None
            raise
        version = model.aliases.get(alias)
        if version is None:
            return None
        return _registered(self._client.get_model_version(name, str(version)))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._client.set_registered_model_alias(name, alias, str(version))

    def versions(self, name: str) -> list[RegisteredVersion]:
        """Every version of ``name``, oldest first (empty when the model is not registered)."""
        try:
            model = self._client.get_registered_model(name)
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return []
            raise
        aliases: dict[int, list[str]] = {}
        for alias, version in sorted(model.aliases.items()):
            aliases.setdefault(int(version), []).append(alias)
        escaped = name.replace("'", "\\'")
        found = self._client.search_model_versions(f"name = '{escaped}'")
        return sorted(
            (_registered(v).model_copy(update={"aliases": aliases.get(int(v.version), [])}) for v in found),
            key=lambda v: v.version,
        )


def _tracing_input(example: pd.DataFrame) -> np.ndarray:
    """The example as one writable numeric array with at least two rows (so the batch size stays dynamic)."""
    if example.empty:
        raise ValueError("log_model needs an example with at least one row and one column")
    inputs = np.array(example.to_numpy(), copy=True)
    if not np.issubdtype(inputs.dtype, np.number):
        raise ValueError(f"example columns must share one numeric dtype, got {sorted(set(map(str, example.dtypes)))}")
    return inputs if len(inputs) > 1 else np.concatenate([inputs, inputs])


def _logged_model_id(model_uri: str) -> str | None:
    """``m-...`` from ``models:/m-...``; None for other URIs (runs:/, registered model URIs)."""
    target = model_uri.removeprefix("models:/")
    return target if model_uri.startswith("models:/") and target.startswith("m-") and "/" not in target else None


def _registered(version: Any) -> RegisteredVersion:
    return RegisteredVersion(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id or None,
        tags=dict(version.tags),
        aliases=list(version.aliases),
    )
