"""Experiment tracking and the model registry on MLflow (the only MLflow importer).

With the embedded default the tracking URI is ``sqlite:////abs/path/mlflow.db`` and artifacts go to the
``artifacts`` folder next to the database. A model is logged as an MLflow pyfunc "model from code" (no pickle
of our objects): its weights (``.npz``) and description (``ServedModel`` JSON) are artifacts, this package's
``components`` code travels with it, and the code ``components.ml.serving`` runs at load. Its signature names
the feature columns (matched by name; ``double``, or ``long`` where the contract says int64) and its outputs
(one probability column per class name, or ``prediction``), with a few example rows.

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
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from concurrent.futures import Future, ThreadPoolExecutor  # noqa: E402
from importlib.metadata import version as installed_version  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402
from mlflow.exceptions import InvalidUrlException, MlflowException  # noqa: E402
from mlflow.models import Model, ModelSignature  # noqa: E402
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
from mlflow.types import ColSpec, Schema  # noqa: E402

from components.core.errors import (  # noqa: E402
    PERMANENT_OS_ERRORS,
    ConsortiaError,
    EdgeFailure,
    EdgeUnavailable,
    raising_consortia_errors,
)
from components.core.params import Params  # noqa: E402
from components.core.ports import (  # noqa: E402  (RegisteredVersion: app.queries)
    RegisteredVersion,
    ServedModel,
    flatten_params,
)

_SQLITE_PREFIX = "sqlite:///"
METRICS_EVERY_S = 2.0  # round metrics are sent to MLflow in one batch at most this often (and on flush)
METRICS_PER_BATCH = 1000  # MLflow's limit for the metrics of one log_batch

# The served model's code (MLflow "models from code"): copied into the model, run at load. Its artifacts
# are the two files ``RunTracker.log_model`` writes; ``components.ml.serving`` does the rest.
_PYFUNC_CODE = '''"""Consortia's served model: the federation's final model on a frame of named feature columns."""

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from components.ml.serving import ServedPredictor


class ConsortiaModel(PythonModel):
    def load_context(self, context):
        self.predictor = ServedPredictor.load(context.artifacts["served_model"], context.artifacts["weights"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        try:
            return self.predictor.predict(frame)
        except ValueError as error:  # the input's fault: a 400 from MLflow's scoring server, with the reason
            raise MlflowException.invalid_parameter_value(str(error)) from None


mlflow.models.set_model(ConsortiaModel())
'''
_COMPONENTS = Path(__file__).resolve().parents[1]  # the ``components`` package, shipped with every model
_SERVING_REQUIREMENTS = ("torch", "numpy", "pandas", "pydantic")
_ARTIFACT_FILES = {"served_model": "served_model.json", "weights": "weights.npz"}  # pyfunc artifact -> file

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
def _tracking_error(edge: str, error: Exception) -> ConsortiaError | None:
    """Consortia's error for an MLflow, HTTP or OS error; None for errors that are not the edge's."""
    if isinstance(error, InvalidUrlException):
        return EdgeFailure(edge, error.message)
    if isinstance(error, MlflowException):
        kind = EdgeUnavailable if error.error_code in _TRANSIENT_CODES else EdgeFailure
        return kind(edge, f"{error.error_code}: {error.message}")
    if isinstance(error, PERMANENT_OS_ERRORS):
        return EdgeFailure(edge, f"{type(error).__name__}: {error}")
    if isinstance(error, OSError):  # requests' ConnectionError and Timeout are OSErrors, and so is TimeoutError
        # ... but requests' InvalidURL, MissingSchema and InvalidSchema are ValueErrors too: a bad URI stays bad
        kind = EdgeFailure if isinstance(error, ValueError) else EdgeUnavailable
        return kind(edge, f"{type(error).__name__}: {error}")
    return None


def _artifact_location(tracking_uri: str, artifact_root: Path | None) -> str | None:
    """``file://`` URI of a new experiment's artifacts: the ``artifacts`` folder beside a SQLite store,
    ``artifact_root`` beside another database (e.g. PostgreSQL); None for a tracking server (its default)."""
    if tracking_uri.startswith(_SQLITE_PREFIX):
        database = Path(tracking_uri.removeprefix(_SQLITE_PREFIX)).resolve()
        return (database.parent / "artifacts").as_uri()
    if tracking_uri.startswith(("http://", "https://")) or artifact_root is None:
        return None
    return artifact_root.resolve().as_uri()


@raising_consortia_errors(functools.partial(_tracking_error, "tracking"))
class RunTracker:
    """One MLflow run at a time in one experiment: params, metrics, tags, JSON artifacts and the model."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_root = artifact_root  # where artifacts go when the store is a database, not a server
        self._client = MlflowClient(tracking_uri)
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        # metrics go to MLflow on a thread of their own, in the order logged; MLflow's own async logging would make
        # every set_terminated wait up to a second for its queue thread
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-metrics")
        self._queued: list[tuple[list[Metric], Future[None]]] = []  # sent, not yet confirmed
        self._unsent: list[Metric] = []  # metrics not yet handed to MLflow (at most METRICS_EVERY_S old)
        self._unsent_since = 0.0

    def start(self, run_name: str, tags: dict[str, str]) -> str:
        """Create a run in the experiment (created on first use); returns the MLflow run id."""
        self._send_unsent()  # the previous run's last metrics go to that run
        self._experiment_id = self._experiment_id_for(self.experiment)
        run = self._client.create_run(self._experiment_id, run_name=run_name, tags=tags)
        self._run_id = run.info.run_id
        return self._run_id

    def resume(self, tracking_run_id: str) -> None:
        """Continue logging to an existing MLflow run, marking it running again if it had ended."""
        self._send_unsent()
        run = self._client.get_run(tracking_run_id)
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            self._client.update_run(tracking_run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        self._run_id = tracking_run_id
        self._experiment_id = run.info.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; nested dicts become dotted keys and values are stringified."""
        self._client.log_batch(self._active_run_id(), params=[Param(k, v) for k, v in flatten_params(params).items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffered, then sent to MLflow in one batch at most every ``METRICS_EVERY_S`` (one store transaction for
        many rounds, off the caller's thread); ``flush`` or ``finish`` confirms. A crash loses at
        most the unsent rounds, which a resume logs again (``logged_steps``)."""
        self._active_run_id()  # no run: the caller's mistake, said now rather than at the next batch
        now = int(time.time() * 1000)
        if not self._unsent:
            self._unsent_since = time.monotonic()
        self._unsent += [Metric(key, float(value), now, step) for key, value in metrics.items()]
        if len(self._unsent) >= METRICS_PER_BATCH or time.monotonic() - self._unsent_since >= METRICS_EVERY_S:
            self._send_unsent()

    def _send_unsent(self) -> None:
        """Hand the buffered metrics to the sender thread, in batches MLflow takes."""
        while self._unsent:
            run_id = self._active_run_id()
            batch = self._unsent[:METRICS_PER_BATCH]
            del self._unsent[: len(batch)]
            self._queued.append((batch, self._sender.submit(self._client.log_batch, run_id, metrics=batch)))

    def flush(self) -> None:
        """Wait until every logged metric is stored; raises the first failure, and the batches MLflow refused stay
        buffered for the next call (nothing is lost)."""
        self._send_unsent()
        queued, self._queued = self._queued, []
        outcomes = [(batch, sent.exception()) for batch, sent in queued]  # waits for each batch
        refused = [(batch, error) for batch, error in outcomes if error is not None]
        if refused:
            self._unsent[:0] = [metric for batch, _ in refused for metric in batch]
            raise refused[0][1]

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric ``key`` is stored in the active run."""
        self.flush()
        return {metric.step for metric in self._client.get_metric_history(self._active_run_id(), key)}

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.log_batch(self._active_run_id(), tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_json(self, obj: dict[str, Any], artifact_file: str) -> None:
        self._client.log_dict(self._active_run_id(), obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._client.log_text(self._active_run_id(), text, artifact_file)

    def log_model(self, served: ServedModel, params: Params, example: pd.DataFrame, name: str = "model") -> str:
        """Log the model ``served`` describes with weights ``params``; returns a URI pyfunc can load.

        ``example`` (a few input rows, e.g. holdout rows as read) becomes the input example. pyfunc's
        ``predict`` takes a frame with the feature columns (by name, in any order, extra columns ignored;
        float or small int columns, and int64 where the contract says int64) and answers a frame of one
        probability column per class name, or one ``prediction`` column for regression.
        """
        run_id = self._active_run_id()
        inputs = _input_example(served, example)
        signature = ModelSignature(
            inputs=Schema([ColSpec(_column_type(served.dtype(feature)), feature) for feature in served.features]),
            outputs=Schema([ColSpec("double", output) for output in served.outputs]),
        )
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(experiment_id=self._experiment_id)
        search_path = list(sys.path)
        with tempfile.TemporaryDirectory(prefix="consortia-model-") as folder:
            files = Path(folder)
            (files / "served_model.json").write_text(served.model_dump_json(indent=2))
            with open(files / "weights.npz", "wb") as weights:
                np.savez(weights, allow_pickle=False, **{key: np.asarray(value) for key, value in params.items()})
            (files / "consortia_model.py").write_text(_PYFUNC_CODE)
            try:
                info = Model.log(  # mlflow.pyfunc.log_model without an active run: the run is ours, by id
                    artifact_path=None,
                    name=name,
                    flavor=mlflow.pyfunc,
                    flavor_name="pyfunc.ModelFromCode",
                    python_model=str(files / "consortia_model.py"),
                    artifacts={key: str(files / file) for key, file in _ARTIFACT_FILES.items()},
                    code_paths=[str(_COMPONENTS)],
                    signature=signature,
                    input_example=inputs,
                    pip_requirements=[f"{package}=={_release(package)}" for package in _SERVING_REQUIREMENTS],
                    metadata={"feature_names": served.features, "outputs": served.outputs, "task": served.task},
                    run_id=run_id,
                )
            finally:  # validating the example loads the model here, which puts its (temporary) code on sys.path
                sys.path[:] = search_path
        return info.model_uri

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        self.flush()
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
            location = _artifact_location(self.tracking_uri, self.artifact_root)
            return self._client.create_experiment(name, artifact_location=location)
        except MlflowException as error:  # created meanwhile by another process
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            return self._client.get_experiment_by_name(name).experiment_id


@raising_consortia_errors(functools.partial(_tracking_error, "registry"))
class ModelRegistry:
    """Registered models, their versions and aliases (``champion``) in MLflow's registry."""

    def __init__(self, tracking_uri: str) -> None:
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def register(self, model_uri: str, name: str, tags: dict[str, str], description: str = "") -> int:
        """Add ``model_uri`` (a ``models:/<model_id>`` URI from ``RunTracker.log_model``) as a new version, created
        with its tags and description (Markdown) at once."""
        try:
            self._client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        model_id = _logged_model_id(model_uri)
        run_id = self._client.get_logged_model(model_id).source_run_id if model_id else None
        version = self._client.create_model_version(
            name, model_uri, run_id=run_id, tags=tags, description=description or None, model_id=model_id
        )
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

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` (nothing happens when the model or the alias does not exist)."""
        if self.version_by_alias(name, alias) is not None:
            self._client.delete_registered_model_alias(name, alias)

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_model_version_tag(name, str(version), key, str(value))

    def delete_version_tags(self, name: str, version: int, keys: Sequence[str]) -> None:
        """Remove these tags of the version (keys it lacks are skipped)."""
        present = self._client.get_model_version(name, str(version)).tags
        for key in keys:
            if key in present:
                self._client.delete_model_version_tag(name, str(version), key)

    def run_artifact(self, version: RegisteredVersion, artifact_file: str) -> dict[str, Any] | None:
        """A JSON artifact of the version's MLflow run (e.g. its model card); None when the run has none."""
        if version.run_id is None:
            return None
        with tempfile.TemporaryDirectory(prefix="consortia-artifact-") as folder:
            try:
                path = self._client.download_artifacts(version.run_id, artifact_file, folder)
                return json.loads(Path(path).read_text())
            except (MlflowException, OSError, ValueError):
                return None

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


def _input_example(served: ServedModel, example: pd.DataFrame) -> pd.DataFrame:
    """The example's feature columns (named, numeric, at least one row), in the served order."""
    missing = [name for name in served.features if name not in example.columns]
    if example.empty or missing:
        raise ValueError(f"log_model needs an example with at least one row of the feature columns, lacking {missing}")
    inputs = example[served.features].copy()
    not_numeric = [name for name, dtype in inputs.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
    if not_numeric:
        raise ValueError(f"example feature columns must be numeric: {not_numeric}")
    return inputs


def _column_type(dtype: str) -> str:
    """The signature's type of a feature column: ``long`` for the contract's integer columns, else ``double``.

    MLflow accepts float32, float64 and small ints for ``double``, but int64 (beyond 0/1 values) only for
    ``long``: so a frame read from a CSV that follows the contract is taken as it is.
    """
    return "long" if dtype.startswith(("int", "uint")) else "double"


def _release(package: str) -> str:
    """The installed version of ``package``, without a local tag (``2.13.0+cpu`` -> ``2.13.0``)."""
    return installed_version(package).split("+")[0]


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
        description=version.description or "",
    )
