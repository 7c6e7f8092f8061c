"""Tracking and registry against a real SQLite MLflow store in a temporary folder."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.adapters.tracking import ModelRegistry, RunTracker
from components.core.model_spec import ModelSpec
from components.core.ports import ServedModel
from components.ml.model import build_model, get_params

FEATURES = ["a", "b", "c", "d"]


def served_classifier(classes: list[str], hidden: list[int]) -> tuple[ServedModel, dict[str, np.ndarray]]:
    spec = ModelSpec(n_features=len(FEATURES), n_classes=len(classes), hidden=hidden)
    served = ServedModel(spec=spec.model_dump(mode="json"), features=FEATURES, classes=classes)
    return served, get_params(build_model(spec))


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # anything MLflow might write relative to the cwd stays in tmp_path
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


@pytest.mark.integration
def test_log_register_alias_and_serve_champion(tracking_uri: str, tmp_path: Path, monkeypatch):
    import mlflow  # after components.adapters.tracking, which sets MLflow's import-time flags (telemetry, log level)

    (tmp_path / "mlflow").mkdir()
    tracker = RunTracker(tracking_uri, experiment="federation-test")
    run_id = tracker.start("run-1", tags={"consortia.run_id": "run-1"})
    tracker.log_params({"rounds": 2, "training": {"lr": 0.1, "optimizer": {"name": "sgd"}}})
    tracker.log_metrics({"accuracy": 0.5}, step=1)
    tracker.log_metrics({"accuracy": 0.75}, step=2)
    tracker.set_tags({"promotion.decision": "promoted"})
    tracker.log_json({"run_id": "run-1", "rounds": []}, "summary.json")
    served, params = served_classifier(["setosa", "versicolor", "virginica"], hidden=[5])
    example = pd.DataFrame(np.arange(12, dtype=np.float64).reshape(3, 4), columns=FEATURES)

    model_uri = tracker.log_model(served, params, example)
    registry = ModelRegistry(tracking_uri)
    version = registry.register(model_uri, "consortia-test", tags={"metric.accuracy": "0.750000"})
    registry.set_alias("consortia-test", "champion", version)
    tracker.finish()

    run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"rounds": "2", "training.lr": "0.1", "training.optimizer.name": "sgd"}
    assert run.data.metrics == {"accuracy": 0.75}
    assert run.data.tags["promotion.decision"] == "promoted"
    assert run.info.artifact_uri.startswith((tmp_path / "mlflow" / "artifacts").as_uri())
    summary_file = Path(run.info.artifact_uri.removeprefix("file://")) / "summary.json"
    assert json.loads(summary_file.read_text()) == {"run_id": "run-1", "rounds": []}

    champion = registry.version_by_alias("consortia-test", "champion")
    assert champion is not None
    assert (champion.version, champion.run_id, champion.aliases) == (1, run_id, ["champion"])
    assert champion.tags == {"metric.accuracy": "0.750000"}
    assert registry.version_by_alias("consortia-test", "staging") is None
    assert registry.version_by_alias("no-such-model", "champion") is None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", tracking_uri)
    champion_model = mlflow.pyfunc.load_model("models:/consortia-test@champion")
    five_rows = pd.DataFrame(np.linspace(-1, 1, 20).reshape(5, 4), columns=FEATURES)
    probabilities = champion_model.predict(five_rows)
    assert champion_model.metadata.get_input_schema().input_names() == FEATURES
    assert champion_model.metadata.get_output_schema().input_names() == ["setosa", "versicolor", "virginica"]
    assert champion_model.metadata.saved_input_example_info is not None
    assert list(probabilities.columns) == ["setosa", "versicolor", "virginica"]
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.integration
def test_versions_list_every_registration_and_resume_reopens_a_run(tracking_uri: str, tmp_path: Path):
    import mlflow  # after components.adapters.tracking, which sets MLflow's import-time flags (telemetry, log level)

    (tmp_path / "mlflow").mkdir()
    tracker = RunTracker(tracking_uri, experiment="federation-test")
    run_id = tracker.start("run-2", tags={})
    served, params = served_classifier(["0", "1"], hidden=[3])
    one_row = pd.DataFrame([[0.0, 1.0, 2.0, 3.0]], columns=FEATURES)
    model_uri = tracker.log_model(served, params, one_row)
    registry = ModelRegistry(tracking_uri)
    first = registry.register(model_uri, "consortia-test", tags={})
    second = registry.register(model_uri, "consortia-test", tags={"note": "again"})
    registry.set_alias("consortia-test", "champion", second)
    tracker.finish("FAILED")

    resumed = RunTracker(tracking_uri, experiment="federation-test")
    resumed.resume(run_id)
    resumed.log_metrics({"loss": 0.25}, step=3)
    resumed.finish()

    assert (first, second) == (1, 2)
    assert [(v.version, v.aliases, v.tags) for v in registry.versions("consortia-test")] == [
        (1, [], {}),
        (2, ["champion"], {"note": "again"}),
    ]
    assert registry.versions("no-such-model") == []
    run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    assert (run.info.status, run.data.metrics) == ("FINISHED", {"loss": 0.25})
    loaded = mlflow.pyfunc.load_model(model_uri)
    three_rows = pd.DataFrame(np.zeros((3, 4), dtype=np.float32), columns=FEATURES)  # float32 is taken too
    assert loaded.predict(three_rows).shape == (3, 2)


@pytest.mark.integration
def test_aliases_and_version_tags_can_be_taken_back(tracking_uri: str, tmp_path: Path):
    (tmp_path / "mlflow").mkdir()
    tracker = RunTracker(tracking_uri, experiment="undo-test")
    tracker.start("run-1", tags={})
    served, params = served_classifier(["no", "yes"], hidden=[2])
    example = pd.DataFrame(np.zeros((1, 4)), columns=FEATURES)
    registry = ModelRegistry(tracking_uri)
    version = registry.register(tracker.log_model(served, params, example), "undo", tags={"metric.accuracy": "0.5"})
    tracker.finish()

    registry.set_alias("undo", "champion", version)
    registry.set_version_tags("undo", version, {"promotion.decision": "promoted", "promotion.reviewer": "ann"})
    assert registry.versions("undo")[0].tags["promotion.reviewer"] == "ann"
    registry.delete_version_tags("undo", version, ["promotion.decision", "promotion.reviewer", "never-set"])
    registry.delete_alias("undo", "champion")
    registry.delete_alias("undo", "champion")  # again: nothing to do
    registry.delete_alias("no-such-model", "champion")

    assert registry.version_by_alias("undo", "champion") is None
    assert registry.versions("undo")[0].tags == {"metric.accuracy": "0.5"}
