"""The in-memory twins: each implements its port exactly, records what it was given, and fails on request."""

import hashlib
import inspect
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.contract import Contract
from components.core.errors import EdgeFailure, EdgeUnavailable, is_retryable
from components.core.ports import MetadataPort, RegisteredVersion, RegistryPort, ServedModel, StorePort, TrackerPort
from components.twins import (
    MemoryMetadata,
    MemoryRegistry,
    MemoryStore,
    MemoryTracker,
    validate_with_schema,
)

PAIRS = [
    (MemoryTracker, TrackerPort),
    (MemoryRegistry, RegistryPort),
    (MemoryStore, StorePort),
    (MemoryMetadata, MetadataPort),
]


def port_methods(port: type) -> list[str]:
    return [name for name, member in vars(port).items() if inspect.isfunction(member) and not name.startswith("_")]


@pytest.mark.parametrize(("twin", "port"), PAIRS, ids=lambda c: c.__name__)
def test_twin_has_every_port_method_with_the_ports_signature(twin: type, port: type):
    methods = port_methods(port)

    assert methods  # the port declares something
    for name in methods:
        assert callable(getattr(twin, name, None)), f"{twin.__name__} lacks {name}"
        assert str(inspect.signature(getattr(twin, name))) == str(inspect.signature(getattr(port, name))), name


def test_twins_import_no_edge_library():
    code = (
        "import sys, components.twins; "
        "print(sorted(m for m in ('mlflow', 'sqlalchemy', 'dvc', 'great_expectations', 'torch', 'zmq') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "[]"


SERVED = ServedModel(spec={"n_features": 2, "n_classes": 2}, features=["a", "b"], classes=["0", "1"])


def test_tracker_records_params_metrics_tags_json_and_model():
    tracker = MemoryTracker(experiment="federation-test")
    run_id = tracker.start("run-1", tags={"consortia.run_id": "run-1"})
    tracker.log_params({"rounds": 2, "training": {"lr": 0.1, "optimizer": {"name": "sgd"}}})
    tracker.log_params({"rounds": 2})  # the same value again is fine, as in MLflow
    tracker.log_metrics({"accuracy": 0.5, "loss": 1}, step=1)
    tracker.log_metrics({"accuracy": 0.75}, step=2)
    tracker.set_tags({"promotion.decision": "promoted", "round": 2})
    tracker.log_json({"run_id": "run-1", "rounds": ()}, "summary.json")
    params = {"layer.weight": np.array([1.0, 2.0], dtype=np.float32)}
    example = pd.DataFrame(np.zeros((1, 2)), columns=["b", "a"])
    uri = tracker.log_model(SERVED, params, example)
    params["layer.weight"][:] = 9.0  # training goes on: the logged weights must not change
    tracker.finish("FAILED")

    assert run_id in tracker.runs
    assert tracker.params == {"rounds": "2", "training.lr": "0.1", "training.optimizer.name": "sgd"}
    assert tracker.metrics == {1: {"accuracy": 0.5, "loss": 1.0}, 2: {"accuracy": 0.75}}
    assert tracker.metrics[2]["accuracy"] == 0.75
    assert tracker.tags == {"consortia.run_id": "run-1", "promotion.decision": "promoted", "round": "2"}
    assert tracker.artifacts == {"summary.json": {"run_id": "run-1", "rounds": []}}
    assert uri == "memory:/models/1"
    logged = tracker.models[uri]
    assert (logged.run_id, logged.name, logged.feature_names, logged.served) == (run_id, "model", ["a", "b"], SERVED)
    np.testing.assert_array_equal(logged.state["layer.weight"], [1.0, 2.0])
    assert tracker.status == "FAILED"


def test_tracker_refuses_what_mlflow_refuses():
    tracker = MemoryTracker()
    with pytest.raises(RuntimeError, match="start"):
        tracker.log_metrics({"a": 1.0}, step=0)
    tracker.start("run", tags={})
    tracker.log_params({"rounds": 2})

    with pytest.raises(EdgeFailure, match="INVALID_PARAMETER_VALUE") as changed:
        tracker.log_params({"rounds": 3})
    with pytest.raises(EdgeFailure, match="RESOURCE_DOES_NOT_EXIST"):
        tracker.resume("no-such-run")
    with pytest.raises(TypeError):
        tracker.log_json({"value": object()}, "bad.json")
    with pytest.raises(ValueError, match="at least one row"):
        tracker.log_model(SERVED, {}, pd.DataFrame())
    with pytest.raises(ValueError, match=r"lacking \['b'\]"):
        tracker.log_model(SERVED, {}, pd.DataFrame({"a": [1.0]}))

    assert not is_retryable(changed.value)
    assert tracker.params == {"rounds": "2"}


def test_resume_reopens_a_finished_run():
    tracker = MemoryTracker()
    first = tracker.start("run-1", tags={})
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.finish()
    tracker.start("run-2", tags={})

    tracker.resume(first)
    tracker.log_metrics({"loss": 0.5}, step=2)

    assert tracker.status == "RUNNING"
    assert tracker.runs[first].metrics == {1: {"loss": 1.0}, 2: {"loss": 0.5}}
    assert tracker.runs["memory-run-2"].metrics == {}


def test_registry_records_versions_and_aliases_of_logged_models():
    tracker = MemoryTracker()
    run_id = tracker.start("run", tags={})
    uri = tracker.log_model(SERVED, {}, pd.DataFrame(np.zeros((2, 2)), columns=["a", "b"]))
    registry = MemoryRegistry(tracker)

    first = registry.register(uri, "consortia-test", tags={"metric.accuracy": "0.75"})
    second = registry.register(uri, "consortia-test", tags={})
    registry.set_alias("consortia-test", "champion", first)
    registry.set_alias("consortia-test", "champion", second)

    assert (first, second) == (1, 2)
    assert registry.aliases == {"consortia-test": {"champion": 2}}
    assert registry.sources[("consortia-test", 1)] == uri
    assert registry.version_by_alias("consortia-test", "champion") == RegisteredVersion(
        name="consortia-test", version=2, run_id=run_id, tags={}, aliases=["champion"]
    )
    assert registry.version_by_alias("consortia-test", "staging") is None
    assert registry.version_by_alias("no-such-model", "champion") is None
    assert [(v.version, v.aliases, v.tags) for v in registry.versions("consortia-test")] == [
        (1, [], {"metric.accuracy": "0.75"}),
        (2, ["champion"], {}),
    ]
    assert registry.versions("no-such-model") == []
    with pytest.raises(EdgeFailure, match="no logged model"):
        registry.register("memory:/models/99", "consortia-test", tags={})
    with pytest.raises(EdgeFailure, match="no version 3"):
        registry.set_alias("consortia-test", "champion", 3)


def test_registry_without_a_tracker_takes_any_uri():
    registry = MemoryRegistry()

    version = registry.register("memory:/models/1", "m", tags={})

    assert registry.versions("m") == [RegisteredVersion(name="m", version=version)]


def round_row(number: int, participants: list[str]) -> dict:
    return {
        "round": number,
        "participants": participants,
        "metrics": {"accuracy": 0.5 + number / 10, "roc_auc": 0.6, "loss": 0.7},
        "bytes_up": 100,
        "bytes_down": 200,
        "seconds": 1.5,
        "strategy": "fedavg",
    }


def exercise_store(store) -> None:
    """The same calls against the twin and the real store."""
    store.upsert_party("party-b", "k" * 40)
    store.upsert_party("party-a", "a" * 40, manifest={"rows": (12,)})
    store.upsert_party("party-a", "b" * 40)
    store.mark_party("party-a", "online", resources={"cpu": 4})
    store.mark_party("nobody", "online")
    store.start_run("run-1", "federation", {"rounds": 2, "path": Path("/x")})
    store.record_validation("run-1", "party-a", True, {"success": True}, {"rows": 12})
    store.record_validation("run-1", "party-a", False, {"success": False}, {"rows": 12})
    store.record_round("run-1", round_row(1, ["party-a", "party-b"]))
    store.record_round("run-1", round_row(1, ["party-a", "party-b"]))
    store.record_contributions("run-1", 1, {"party-a": 0.25, "party-b": 0.75}, "loo")
    store.record_contributions("run-1", 0, {"party-a": 0.25, "party-b": 0.75}, "loo", {"party-a": 1.0})
    inputs = {"rounds_answered": 2, "rounds_missed": 1, "rejected_messages": 0}
    store.record_reputation("run-1", "party-a", 0.8, inputs)
    store.record_reputation("run-1", "party-b", 0.4, inputs)
    store.finish_run("run-1", "completed", "mlflow-1", "/summaries/run-1.json")
    store.start_run("run-2", "federation", {})
    store.record_reputation("run-2", "party-b", 0.3, inputs)
    store.delete_party("party-b")


def without_times(rows: list[dict]) -> list[dict]:
    """Rows with datetimes replaced by a marker: SQLite hands back naive datetimes, the twin aware ones."""
    return [{k: "<datetime>" if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]


def test_store_twin_keeps_tables_and_reads_like_the_real_store(tmp_path: Path):
    from components.adapters.store import FederationStore, anonymous_name, metadata

    twin, real = MemoryStore(), FederationStore(f"sqlite:///{tmp_path / 'federation.db'}")
    exercise_store(twin)
    exercise_store(real)

    for read in ("party_rows", "party_overview", "run_rows", "reputation_rows", "validation_rows"):
        assert without_times(getattr(twin, read)()) == without_times(getattr(real, read)()), read
    assert twin.reputation_of("party-a") == real.reputation_of("party-a") == 0.8
    assert twin.reputation_of("party-b") == real.reputation_of("party-b") == 0.5
    left = anonymous_name("party-b")
    assert [r["participants"] for r in twin.tables["rounds"]] == [["party-a", left]]
    assert sorted((r["round"], r["party"], r["reward"]) for r in twin.tables["contributions"]) == [
        (0, left, None),
        (0, "party-a", 1.0),
        (1, left, None),
        (1, "party-a", None),
    ]
    assert twin.tables["party_stats"] == [
        {"party": "party-a", "rounds_joined": 2, "rounds_missed": 1, "rejected_messages": 0}
    ]
    with real.engine.connect() as conn:  # every table, row for row, as the real store holds it
        for name, rows in twin.tables.items():
            stored = [dict(r._mapping) for r in conn.execute(metadata.tables[name].select())]
            assert sorted(map(repr, without_times(rows))) == sorted(map(repr, without_times(stored))), name
    assert twin.tables["runs"][0]["config"] == {"rounds": 2, "path": "/x"}
    assert twin.tables["rounds"][0]["detail"] == {
        "bytes_up": 100,
        "bytes_down": 200,
        "seconds": 1.5,
        "strategy": "fedavg",
    }


def test_store_twin_refuses_what_the_store_refuses():
    store = MemoryStore()

    with pytest.raises(EdgeFailure, match="NOT NULL constraint failed: parties.public_key"):
        store.upsert_party("party-a", None)
    with pytest.raises(EdgeFailure, match="Unconsumed column names: colour"):
        store.upsert_party("party-a", "k", colour="blue")
    with pytest.raises(EdgeFailure, match="resources"):
        store.upsert_party("party-a", "k", resources={"when": datetime.now()})

    assert store.tables["parties"] == []


def test_metadata_twin_hashes_like_dvc_and_pushes_only_new_content(tmp_path: Path):
    from components.adapters.versioning import MetadataRepo

    def run(repo, root: Path) -> tuple:
        manifest, contract = root / "manifests" / "party-a.json", root / "contract.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"rows": 12}))
        contract.write_text(json.dumps({"name": "breast_cancer"}))
        hashes = [repo.track(manifest), repo.track(contract)]
        pushed = [repo.push(), repo.push()]
        manifest.write_text(json.dumps({"rows": 13}))
        hashes.append(repo.track(manifest))
        pushed.append(repo.push())
        return hashes, pushed, repo.tracked()

    twin_root, real_root = tmp_path / "twin", tmp_path / "real"
    twin = MemoryMetadata(twin_root)
    twin_result = run(twin, twin_root)
    real_result = run(MetadataRepo(real_root, tmp_path / "remote"), real_root)

    assert twin_result == real_result
    hashes, pushed, tracked = twin_result
    assert hashes[0] == hashlib.md5(b'{"rows": 12}').hexdigest()
    assert pushed == [2, 0, 1]
    assert tracked == {"contract.json": hashes[1], "manifests/party-a.json": hashes[2]}
    assert twin.files[(twin_root / "contract.json").resolve()] == hashes[1]
    assert twin.remote[hashes[0]] == b'{"rows": 12}'


def test_metadata_twin_refuses_outside_and_missing_files(tmp_path: Path):
    twin = MemoryMetadata(tmp_path / "metadata")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "elsewhere.json").write_text("{}")

    with pytest.raises(ValueError, match="outside the metadata repository"):
        twin.track(tmp_path / "elsewhere.json")
    with pytest.raises(EdgeFailure, match="does not exist"):
        twin.track(tmp_path / "metadata" / "missing.json")
    assert twin.files == {}


CONTRACT = Contract(
    name="toy",
    version=1,
    target="label",
    features=["x", "y"],
    dtypes={"x": "float64", "y": "float64", "label": "int64"},
    classes=[0, 1],
    suite={"name": "toy_v1", "expectations": []},
)


def toy_frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [0.1, 0.2, 0.3], "y": [1, 2, 3], "label": [0, 1, 0]})


def test_schema_validator_passes_a_conforming_frame():
    summary = validate_with_schema(toy_frame(), CONTRACT)

    assert summary.success, summary.failed
    assert (summary.contract, summary.version, summary.row_count) == ("toy", 1, 3)
    assert len(summary.outcomes) == 3 * len(CONTRACT.columns)


@pytest.mark.parametrize(
    ("spoil", "failed"),
    [
        (lambda f: f.drop(columns="y"), {"expect_column_to_exist(y)", "expect_column_values_to_be_of_type(y)"}),
        (lambda f: f.assign(x=[0.1, None, 0.3]), {"expect_column_values_to_not_be_null(x)"}),
        (lambda f: f.assign(label=[0.0, 1.5, 0.0]), {"expect_column_values_to_be_of_type(label)"}),
        (lambda f: f.assign(x=["a", "b", "c"]), {"expect_column_values_to_be_of_type(x)"}),
        (lambda f: f.assign(label=[True, False, True]), {"expect_column_values_to_be_of_type(label)"}),
    ],
    ids=["missing column", "null", "fraction in int64", "text in float64", "bool in int64"],
)
def test_schema_validator_names_the_failed_check(spoil, failed):
    summary = validate_with_schema(spoil(toy_frame()), CONTRACT)

    assert not summary.success
    assert failed <= set(summary.failed)
    assert set(summary.failed) - failed <= {"expect_column_values_to_not_be_null(y)"}  # a missing column has none


def test_fail_next_fails_exactly_once_and_leaves_no_trace():
    tracker = MemoryTracker()
    tracker.start("run", tags={})
    tracker.fail_next("log_metrics", EdgeUnavailable("tracking", "server busy"))

    with pytest.raises(EdgeUnavailable, match="server busy") as failed:
        tracker.log_metrics({"loss": 1.0}, step=1)
    assert tracker.metrics == {}
    tracker.log_metrics({"loss": 1.0}, step=1)

    assert is_retryable(failed.value)
    assert tracker.metrics == {1: {"loss": 1.0}}
    assert tracker.calls == ["start", "log_metrics", "log_metrics"]
    assert tracker.pending_faults() == {}


@pytest.mark.parametrize(
    ("make", "method", "call"),
    [
        (MemoryRegistry, "register", lambda t, _: t.register("memory:/models/1", "m", tags={})),
        (MemoryStore, "upsert_party", lambda t, _: t.upsert_party("party-a", "k")),
        (MemoryStore, "party_rows", lambda t, _: t.party_rows()),
        (MemoryMetadata, "track", lambda t, p: t.track(p)),
        (MemoryMetadata, "push", lambda t, _: t.push()),
    ],
    ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", ""),
)
def test_every_twin_fails_on_request_then_works(make, method, call, tmp_path: Path):
    twin = make()
    target = tmp_path / "file.json"
    target.write_text("{}")
    twin.fail_next(method, EdgeUnavailable("edge", "try again"), times=2)

    for _ in range(2):
        with pytest.raises(EdgeUnavailable):
            call(twin, target)
    call(twin, target)

    assert twin.calls == [method] * 3


def test_a_retry_loop_recovers_from_a_transient_fault_but_not_a_permanent_one():
    def with_retries(action, attempts: int = 3):
        for attempt in range(attempts):
            try:
                return action()
            except Exception as error:
                if not is_retryable(error) or attempt == attempts - 1:
                    raise

    store = MemoryStore()
    store.fail_next("upsert_party", EdgeUnavailable("store", "database is locked"))
    with_retries(lambda: store.upsert_party("party-a", "k"))
    store.fail_next("upsert_party", EdgeFailure("store", "bad schema"))

    with pytest.raises(EdgeFailure):
        with_retries(lambda: store.upsert_party("party-b", "k"))
    assert [r["name"] for r in store.party_rows()] == ["party-a"]
    assert store.calls.count("upsert_party") == 3


def test_fail_next_refuses_unknown_methods_and_non_exceptions():
    store = MemoryStore()

    with pytest.raises(ValueError, match="no public method"):
        store.fail_next("drop_everything", EdgeFailure("store", "x"))
    with pytest.raises(ValueError, match="no public method"):
        store.fail_next("_find", EdgeFailure("store", "x"))
    with pytest.raises(TypeError, match="needs an exception"):
        store.fail_next("party_rows", "boom")


@pytest.mark.parametrize("kind", ["twin", "real"])
def test_a_partys_last_heartbeat_stays_when_it_is_marked_offline(kind: str, tmp_path: Path):
    from components.adapters.store import FederationStore

    store = MemoryStore() if kind == "twin" else FederationStore(f"sqlite:///{tmp_path / 'federation.db'}")
    store.upsert_party("alpha", "k" * 40)
    store.mark_party("alpha", "online", {"cores": 2})
    [beat] = [row["last_seen"] for row in store.party_rows()]
    store.mark_party("alpha", "offline")  # a bye, or the run's end: not a heartbeat

    [row] = store.party_rows()
    assert beat is not None and (row["status"], row["last_seen"]) == ("offline", beat)
