"""Each adapter raises its library's errors as Consortia's, so the flow retries what a retry may cure.

Against the real adapters on a temporary SQLite store, MLflow store and DVC repository: a library error is
injected once where the adapter calls its library (or provoked for real: a locked database, an unreachable
MLflow server, a held DVC lock), and the adapter must raise EdgeUnavailable for it and work on the next
call; a permanent fault (a bad URL, a bad param, a missing resource) must raise EdgeFailure.
"""

import errno
import inspect
import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy.exc as sa_exc
import zc.lockfile
from dvc.exceptions import DvcException, UploadError
from dvc.lock import LockError
from dvc.repo import Repo
from mlflow.exceptions import InvalidUrlException, MlflowException, RestException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    REQUEST_LIMIT_EXCEEDED,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from components.adapters.contracts import load_contract, validate_dataset
from components.adapters.store import FederationStore
from components.adapters.tracking import ModelRegistry, RegisteredVersion, RunTracker
from components.adapters.versioning import MetadataRepo
from components.core import ports
from components.core.errors import ContractError, EdgeFailure, EdgeUnavailable, is_retryable


def failing_once(original: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    """``original``, except that its first call raises ``error``."""
    calls = {"n": 0}

    def call(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return original(*args, **kwargs)

    return call


def assert_transient(error: pytest.ExceptionInfo, edge: str) -> None:
    assert isinstance(error.value, EdgeUnavailable)
    assert is_retryable(error.value)
    assert error.value.edge == edge


def assert_permanent(error: pytest.ExceptionInfo, edge: str) -> None:
    assert isinstance(error.value, EdgeFailure)
    assert not is_retryable(error.value)
    assert error.value.edge == edge


# --- the adapters implement their ports ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "port"),
    [
        (RunTracker, ports.TrackerPort),
        (ModelRegistry, ports.RegistryPort),
        (FederationStore, ports.StorePort),
        (MetadataRepo, ports.MetadataPort),
    ],
    ids=lambda c: c.__name__,
)
def test_adapter_methods_take_the_ports_parameters_and_all_translate_errors(adapter: type, port: type):
    for name, member in vars(port).items():
        if not inspect.isfunction(member) or name.startswith("_"):
            continue
        expected = [(p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()]
        actual = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(adapter, name)).parameters.values()]
        assert actual == expected, f"{adapter.__name__}.{name}"
    public = [n for n, m in vars(adapter).items() if inspect.isfunction(m) and (n == "__init__" or n[0] != "_")]
    assert all(hasattr(getattr(adapter, n), "__wrapped__") for n in public)  # every one goes through the mapping


def test_registered_version_is_the_ports_model():
    assert RegisteredVersion is ports.RegisteredVersion


# --- store (SQLAlchemy) ------------------------------------------------------------------------------


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'federation.db'}"


def locked() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("INSERT INTO parties", {}, sqlite3.OperationalError("database is locked"))


@pytest.mark.parametrize(
    "error",
    [
        locked(),
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")),
        sa_exc.OperationalError("SELECT 1", {}, Exception("could not connect to server: Connection refused")),
        sa_exc.OperationalError("UPDATE", {}, Exception("deadlock detected")),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("connection dropped"), connection_invalidated=True),
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out"),
    ],
    ids=["locked", "server closed", "could not connect", "deadlock", "invalidated", "pool timeout"],
)
def test_store_transient_error_is_edge_unavailable_and_the_next_call_works(store_url, monkeypatch, error):
    store = FederationStore(store_url)
    monkeypatch.setattr(store.engine, "begin", failing_once(store.engine.begin, error))

    with pytest.raises(EdgeUnavailable) as raised:
        store.upsert_party("party-a", "k" * 40)
    store.upsert_party("party-a", "k" * 40)

    assert_transient(raised, "store")
    assert raised.value.__cause__ is error
    assert [r["name"] for r in store.party_rows()] == ["party-a"]


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: parties.name")),
        sa_exc.ProgrammingError("SELECT", {}, sqlite3.ProgrammingError("no such function: frobnicate")),
        sa_exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: parties")),
        sa_exc.ArgumentError("bad argument"),
    ],
    ids=["integrity", "programming", "no such table", "argument"],
)
def test_store_permanent_error_is_edge_failure(store_url, monkeypatch, error):
    store = FederationStore(store_url)
    monkeypatch.setattr(store.engine, "connect", failing_once(store.engine.connect, error))

    with pytest.raises(EdgeFailure) as raised:
        store.party_rows()

    assert_permanent(raised, "store")


def test_a_driver_error_sqlalchemy_wraps_itself_is_mapped(store_url, monkeypatch):
    """The DBAPI error raised inside SQLAlchemy's execution, so SQLAlchemy builds the wrapper as in production."""
    store = FederationStore(store_url)
    dialect = store.engine.dialect
    monkeypatch.setattr(
        dialect, "do_execute", failing_once(dialect.do_execute, sqlite3.OperationalError("database is locked"))
    )

    with pytest.raises(EdgeUnavailable, match="database is locked") as raised:
        store.start_run("run-1", "federation", {})
    store.start_run("run-1", "federation", {})

    assert isinstance(raised.value.__cause__, sa_exc.OperationalError)
    assert [r["run_id"] for r in store.run_rows()] == ["run-1"]


def test_a_closed_connection_is_transient_although_sqlite_calls_it_a_programming_error(store_url, monkeypatch):
    store = FederationStore(store_url)
    dialect = store.engine.dialect
    closed = sqlite3.ProgrammingError("Cannot operate on a closed database.")
    monkeypatch.setattr(dialect, "do_execute", failing_once(dialect.do_execute, closed))

    with pytest.raises(EdgeUnavailable, match="connection lost") as raised:
        store.party_rows()

    assert raised.value.__cause__.connection_invalidated
    assert store.party_rows() == []


@pytest.mark.parametrize(
    "url",
    ["not a url", "nosuchdialect://host/db", "sqlite:////no/such/folder/federation.db"],
    ids=["unparsable", "unknown dialect", "missing folder"],
)
def test_bad_store_url_is_edge_failure(url):
    with pytest.raises(EdgeFailure) as raised:
        FederationStore(url)

    assert_permanent(raised, "store")


def test_constraint_violation_is_edge_failure(store_url):
    store = FederationStore(store_url)

    with pytest.raises(EdgeFailure, match="NOT NULL constraint failed") as raised:
        store.upsert_party("party-a", None)

    assert_permanent(raised, "store")


def test_errors_of_the_caller_are_not_the_stores(store_url):
    store = FederationStore(store_url)

    with pytest.raises(KeyError):
        store.record_round("run-1", {"round": 1})


@pytest.fixture
def exclusive_lock(store_url: str) -> Iterator[sqlite3.Connection]:
    """Another connection holding SQLite's write lock on the store's file."""
    holder = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        yield holder
    finally:
        holder.close()


def test_a_really_locked_database_is_edge_unavailable_until_the_lock_is_released(store_url, exclusive_lock):
    store = FederationStore(store_url, busy_timeout_s=0.2)
    store.upsert_party("party-a", "a" * 40)
    exclusive_lock.execute("BEGIN EXCLUSIVE")

    started = time.monotonic()
    with pytest.raises(EdgeUnavailable, match="database is locked") as raised:
        store.upsert_party("party-b", "b" * 40)
    waited = time.monotonic() - started
    exclusive_lock.execute("ROLLBACK")
    store.upsert_party("party-b", "b" * 40)

    assert_transient(raised, "store")
    assert 0.15 < waited < 3.0  # the configured busy timeout, not the default 5 s
    assert [r["name"] for r in store.party_rows()] == ["party-a", "party-b"]


# --- tracking and registry (MLflow) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # anything MLflow might write relative to the cwd stays here
        yield f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def tracker(tracking_uri: str) -> RunTracker:
    tracker = RunTracker(tracking_uri, experiment="errors")
    tracker.start("run", tags={})
    return tracker


def logged_metrics(tracking_uri: str, run_id: str) -> dict[str, float]:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).get_run(run_id).data.metrics


@pytest.mark.integration
@pytest.mark.parametrize(
    "error",
    [
        MlflowException("unreachable", error_code=TEMPORARILY_UNAVAILABLE),
        MlflowException("API request failed with exception Max retries exceeded", error_code=INTERNAL_ERROR),
        MlflowException("slow down", error_code=REQUEST_LIMIT_EXCEEDED),
        RestException({"error_code": "503", "message": "Service Unavailable"}),
        requests.exceptions.ConnectionError("Connection refused"),
        requests.exceptions.ReadTimeout("read timed out"),
        TimeoutError("timed out"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=lambda e: type(e).__name__ + "-" + str(getattr(e, "error_code", "")),
)
def test_tracking_transient_error_is_edge_unavailable_and_the_next_call_works(
    tracker, tracking_uri, monkeypatch, error
):
    monkeypatch.setattr(tracker._client, "log_batch", failing_once(tracker._client.log_batch, error))
    tracker.log_metrics({"accuracy": 0.5}, step=1)  # buffered: round metrics go to MLflow in batches

    with pytest.raises(EdgeUnavailable) as raised:
        tracker.flush()  # the batch goes to MLflow here, and MLflow refuses it
    tracker.flush()  # the refused metric was kept: the next call sends it and confirms it

    assert_transient(raised, "tracking")
    assert raised.value.__cause__ is error
    assert logged_metrics(tracking_uri, tracker._run_id) == {"accuracy": 0.5}


@pytest.mark.integration
@pytest.mark.parametrize(
    "error",
    [
        MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE),
        MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST),
        MlflowException("nope", error_code=BAD_REQUEST),
        RestException({"error_code": "PERMISSION_DENIED", "message": "no"}),
        InvalidUrlException("Invalid url: http//x"),
        requests.exceptions.InvalidURL("Invalid URL 'http//x'"),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
    ids=lambda e: type(e).__name__ + "-" + str(getattr(e, "error_code", "")),
)
def test_tracking_permanent_error_is_edge_failure(tracker, monkeypatch, error):
    monkeypatch.setattr(tracker._client, "log_batch", failing_once(tracker._client.log_batch, error))

    with pytest.raises(EdgeFailure) as raised:
        tracker.set_tags({"a": "b"})

    assert_permanent(raised, "tracking")


@pytest.mark.integration
def test_a_changed_or_invalid_param_is_edge_failure(tracker):
    tracker.log_params({"rounds": 2})

    with pytest.raises(EdgeFailure, match="INVALID_PARAMETER_VALUE") as changed:
        tracker.log_params({"rounds": 3})
    with pytest.raises(EdgeFailure, match="INVALID_PARAMETER_VALUE") as invalid:
        tracker.log_params({"what?": 1})

    assert_permanent(changed, "tracking")
    assert_permanent(invalid, "tracking")


@pytest.mark.integration
def test_resuming_an_unknown_run_is_edge_failure(tracking_uri):
    with pytest.raises(EdgeFailure, match="RESOURCE_DOES_NOT_EXIST") as raised:
        RunTracker(tracking_uri, experiment="errors").resume("0" * 32)

    assert_permanent(raised, "tracking")


def test_errors_of_the_caller_are_not_the_trackers(tracking_uri):
    with pytest.raises(RuntimeError, match="start"):
        RunTracker(tracking_uri, experiment="errors").log_metrics({"a": 1.0}, step=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
def test_an_unreachable_tracking_server_is_edge_unavailable(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries would take minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    tracker = RunTracker(f"http://127.0.0.1:{free_port()}", experiment="errors")

    with pytest.raises(EdgeUnavailable) as raised:
        tracker.start("run", tags={})

    assert_transient(raised, "tracking")


@pytest.mark.integration
def test_registry_transient_error_is_not_taken_for_a_missing_model(tracking_uri, monkeypatch):
    registry = ModelRegistry(tracking_uri)
    client = registry._client
    unavailable = MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)
    monkeypatch.setattr(client, "get_registered_model", failing_once(client.get_registered_model, unavailable))

    with pytest.raises(EdgeUnavailable) as raised:
        registry.version_by_alias("no-such-model", "champion")

    assert_transient(raised, "registry")
    assert registry.version_by_alias("no-such-model", "champion") is None  # the handled case still holds
    assert registry.versions("no-such-model") == []


@pytest.mark.integration
def test_registry_permanent_errors_are_edge_failures(tracking_uri):
    registry = ModelRegistry(tracking_uri)

    with pytest.raises(EdgeFailure, match="RESOURCE_DOES_NOT_EXIST") as no_model:
        registry.set_alias("no-such-model", "champion", 1)
    with pytest.raises(EdgeFailure, match="RESOURCE_DOES_NOT_EXIST") as no_logged_model:
        registry.register("models:/m-0123456789abcdef", "errors-model", tags={})

    assert_permanent(no_model, "registry")
    assert_permanent(no_logged_model, "registry")


# --- metadata (DVC) ------------------------------------------------------------------------------------


@pytest.fixture
def metadata_repo(tmp_path: Path) -> MetadataRepo:
    return MetadataRepo(tmp_path / "metadata", tmp_path / "metadata-remote")


def manifest_in(repo: MetadataRepo) -> Path:
    path = repo.root / "manifest.json"
    path.write_text('{"rows": 12}')
    return path


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("add", LockError("Unable to acquire lock")),
        ("add", OSError(errno.EIO, "Input/output error")),
        ("push", UploadError(1)),
    ],
    ids=["lock", "io error", "upload"],
)
def test_metadata_transient_error_is_edge_unavailable_and_the_next_call_works(
    metadata_repo, monkeypatch, method, error
):
    manifest = manifest_in(metadata_repo)
    if method == "push":
        metadata_repo.track(manifest)
    monkeypatch.setattr(Repo, method, failing_once(getattr(Repo, method), error))
    call = metadata_repo.push if method == "push" else lambda: metadata_repo.track(manifest)

    with pytest.raises(EdgeUnavailable) as raised:
        call()
    result = call()

    assert_transient(raised, "metadata")
    assert raised.value.__cause__ is error
    assert result == (1 if method == "push" else metadata_repo.tracked()["manifest.json"])


def test_a_really_held_dvc_lock_is_edge_unavailable_until_released(metadata_repo):
    manifest = manifest_in(metadata_repo)
    held = zc.lockfile.LockFile(str(metadata_repo.root / Repo.DVC_DIR / "tmp" / "lock"))  # as another DVC would
    try:
        with pytest.raises(EdgeUnavailable, match="Unable to acquire lock") as raised:
            metadata_repo.track(manifest)
    finally:
        held.close()
    md5 = metadata_repo.track(manifest)

    assert_transient(raised, "metadata")
    assert metadata_repo.tracked() == {"manifest.json": md5}


def test_metadata_permanent_errors_are_edge_failures(metadata_repo, monkeypatch, tmp_path):
    with pytest.raises(EdgeFailure, match="does not exist") as missing:
        metadata_repo.track(metadata_repo.root / "missing.json")
    monkeypatch.setattr(Repo, "push", failing_once(Repo.push, DvcException("remote 'local' is misconfigured")))
    with pytest.raises(EdgeFailure, match="misconfigured") as other:
        metadata_repo.push()
    (metadata_repo.root / ".dvc" / "config").write_text("[core\nbroken")
    with pytest.raises(EdgeFailure, match="config file error") as broken_config:
        MetadataRepo(metadata_repo.root, tmp_path / "metadata-remote")

    for raised in (missing, other, broken_config):
        assert_permanent(raised, "metadata")


# --- contracts (Great Expectations) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expectations", "message"),
    [
        ([{"type": "expect_no_such_thing", "kwargs": {"column": "mean_radius"}}], "could not build 1"),
        ([{"type": "expect_column_values_to_be_between", "kwargs": {}}], "suite is invalid"),
        ("not a list", "suite is invalid"),
    ],
    ids=["unknown expectation", "bad kwargs", "not a list"],
)
def test_a_suite_great_expectations_cannot_build_is_a_contract_error(expectations, message, monkeypatch):
    monkeypatch.setattr(logging.getLogger("great_expectations"), "disabled", True)  # GE logs the dropped one
    contract = load_contract("breast_cancer")
    broken = contract.model_copy(update={"suite": {"name": "broken", "expectations": expectations}})
    frame = pd.DataFrame(np.ones((12, len(contract.columns))), columns=contract.columns)

    with pytest.raises(ContractError, match=message) as raised:
        validate_dataset(frame, broken)

    assert not is_retryable(raised.value)
