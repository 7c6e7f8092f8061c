"""The registered model as its users load it: the README's snippet on a frame read from a CSV, columns by name.

A small classifier trained here on breast-cancer data is logged and registered into a temporary SQLite MLflow
store; then ``mlflow.pyfunc.load_model("models:/...@champion").predict(pd.read_csv(...)[features])`` must work
on the frame as pandas reads it (float64), give the same answer for reordered columns, name its outputs after
the classes, and refuse a frame that lacks a feature column.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from sklearn.model_selection import train_test_split

from components.adapters.contracts import load_contract
from components.adapters.tracking import ModelRegistry, RunTracker
from components.core.model_spec import ModelSpec
from components.core.ports import ServedModel
from components.ml.model import build_model, get_params, set_params
from components.ml.serving import ServedPredictor
from flows.demo import dataset_frame

MODEL_NAME = "consortia-breast-cancer"


@dataclass
class Registered:
    tracking_uri: str
    holdout_csv: Path
    features: list[str]
    target: str
    served: ServedModel
    params: dict[str, np.ndarray]


def trained_classifier(train: pd.DataFrame, features: list[str], target: str, spec: ModelSpec) -> dict:
    """A few hundred full-batch Adam steps, with the standardisation fitted from the training rows."""
    torch.manual_seed(0)
    model = build_model(spec)
    params = get_params(model)
    x = np.array(train[features], dtype=np.float32)
    params["standardize.mean"] = x.mean(axis=0)
    params["standardize.scale"] = x.std(axis=0) + 1e-6
    set_params(model, params)
    inputs, labels = torch.from_numpy(x), torch.tensor(train[target].to_numpy(np.int64))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimiser.step()
    return get_params(model)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One temporary SQLite store for the module (creating one takes seconds); the cwd is its folder."""
    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # anything MLflow might write relative to the cwd stays here
        yield f"sqlite:///{root / 'mlflow.db'}"


def new_tracker(tracking_uri: str, run_name: str) -> RunTracker:
    tracker = RunTracker(tracking_uri, experiment="served-model-test")
    tracker.start(run_name, tags={})
    return tracker


@pytest.fixture(scope="module")
def registered(tracking_uri: str) -> Iterator[Registered]:
    """The trained model logged and registered as ``champion``; MLflow's URIs point at the temporary store."""
    root = Path(tracking_uri.removeprefix("sqlite:///")).parent
    with pytest.MonkeyPatch.context() as patch:
        contract = load_contract("breast_cancer")
        frame = dataset_frame("breast_cancer")
        train, holdout = train_test_split(frame, test_size=0.2, random_state=0, stratify=frame[contract.target])
        holdout_csv = root / "holdout.csv"
        holdout.to_csv(holdout_csv, index=False)
        spec = ModelSpec(n_features=contract.n_features, n_classes=contract.n_classes, hidden=[16])
        params = trained_classifier(train, contract.features, contract.target, spec)
        served = ServedModel(
            spec=spec.model_dump(mode="json"),
            features=contract.features,
            classes=[str(c) for c in contract.classes],
            task=spec.task,
            dtypes={f: contract.dtypes[f] for f in contract.features},
        )
        tracker = new_tracker(tracking_uri, "served")
        started = time.perf_counter()
        model_uri = tracker.log_model(served, params, holdout[contract.features].head(5))
        print(f"log_model: {time.perf_counter() - started:.2f} s")
        registry = ModelRegistry(tracking_uri)
        registry.set_alias(MODEL_NAME, "champion", registry.register(model_uri, MODEL_NAME, tags={}))
        tracker.finish()
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        patch.setenv("MLFLOW_REGISTRY_URI", tracking_uri)
        yield Registered(tracking_uri, holdout_csv, contract.features, contract.target, served, params)


@pytest.fixture(scope="module")
def champion(registered: Registered):
    import mlflow  # after components.adapters.tracking, which sets MLflow's import-time flags

    mlflow.set_tracking_uri(registered.tracking_uri)  # the README's first line
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    print(f"load_model: {time.perf_counter() - started:.2f} s")
    return model


@pytest.mark.integration
def test_the_readme_snippet_serves_a_frame_read_from_csv(registered: Registered, champion):
    holdout = pd.read_csv(registered.holdout_csv)
    features_frame = holdout[registered.features]
    assert set(features_frame.dtypes) == {np.dtype("float64")}  # as pandas reads it: no cast needed

    started = time.perf_counter()
    probabilities = champion.predict(features_frame)
    print(f"predict {len(features_frame)} rows: {(time.perf_counter() - started) * 1000:.1f} ms")

    assert isinstance(probabilities, pd.DataFrame)
    assert list(probabilities.columns) == ["0", "1"]  # the contract's classes, by name
    assert probabilities.index.equals(features_frame.index)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    predicted = probabilities.to_numpy().argmax(axis=1)
    assert (predicted == holdout[registered.target].to_numpy()).mean() > 0.9
    in_memory = ServedPredictor(registered.served, registered.params).predict(features_frame)
    pd.testing.assert_frame_equal(probabilities, in_memory)


@pytest.mark.integration
def test_columns_are_matched_by_name_not_position(registered: Registered, champion):
    holdout = pd.read_csv(registered.holdout_csv)
    features_frame = holdout[registered.features]
    shuffled = features_frame[list(np.random.default_rng(0).permutation(registered.features))]
    assert list(shuffled.columns) != registered.features

    pd.testing.assert_frame_equal(champion.predict(shuffled), champion.predict(features_frame))
    # the whole file, target column included: extra columns are ignored
    pd.testing.assert_frame_equal(champion.predict(holdout), champion.predict(features_frame))


@pytest.mark.integration
def test_a_frame_missing_a_feature_column_is_refused_by_name(registered: Registered, champion):
    from mlflow.exceptions import MlflowException

    features_frame = pd.read_csv(registered.holdout_csv)[registered.features]
    dropped = registered.features[3]

    with pytest.raises(MlflowException, match=f"missing inputs \\['{dropped}'\\]"):
        champion.predict(features_frame.drop(columns=[dropped]))


@pytest.mark.integration
def test_the_signature_names_features_and_classes_and_an_example_is_stored(registered: Registered, champion):
    signature = champion.metadata.signature
    inputs = signature.inputs.input_dict()

    assert signature.inputs.input_names() == registered.features
    assert {spec.type.name for spec in inputs.values()} == {"double"}  # breast cancer: float64 features
    assert signature.outputs.input_names() == ["0", "1"]
    assert champion.metadata.saved_input_example_info["type"] == "dataframe"
    pyfunc = champion.metadata.flavors["python_function"]
    assert "model_code_path" in pyfunc and "python_model" not in pyfunc  # models from code: nothing pickled


@pytest.mark.integration
def test_int64_columns_the_contract_declares_are_taken_as_read(tracking_uri: str, tmp_path: Path):
    import mlflow

    features = ["count", "size"]
    spec = ModelSpec(n_features=2, n_classes=2, hidden=[3])
    served = ServedModel(
        spec=spec.model_dump(mode="json"),
        features=features,
        classes=["benign", "malignant"],
        dtypes={"count": "int64", "size": "float64"},
    )
    (tmp_path / "rows.csv").write_text("size,count\n1.5,3\n0.25,12\n")
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert rows.dtypes.to_dict() == {"size": np.dtype("float64"), "count": np.dtype("int64")}
    tracker = new_tracker(tracking_uri, "int64")
    model_uri = tracker.log_model(served, get_params(build_model(spec)), rows)
    tracker.finish()

    mlflow.set_tracking_uri(tracker.tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    answered = model.predict(rows)

    assert model.metadata.signature.inputs.input_dict()["count"].type.name == "long"
    assert list(answered.columns) == ["benign", "malignant"]
    expected = ServedPredictor(served, get_params(build_model(spec))).predict(rows.astype("float64"))
    pd.testing.assert_frame_equal(answered, expected)


@pytest.mark.integration
def test_a_regression_model_answers_one_prediction_column(tracking_uri: str):
    import mlflow

    spec = ModelSpec(n_features=4, n_classes=1, hidden=[3], task="regression")
    features = ["a", "b", "c", "d"]
    served = ServedModel(spec=spec.model_dump(mode="json"), features=features, task="regression")
    params = get_params(build_model(spec))
    rows = pd.DataFrame(np.linspace(-1, 1, 12).reshape(3, 4), columns=features)
    tracker = new_tracker(tracking_uri, "regression")
    model_uri = tracker.log_model(served, params, rows)
    tracker.finish()

    mlflow.set_tracking_uri(tracker.tracking_uri)
    answered = mlflow.pyfunc.load_model(model_uri).predict(rows[features[::-1]])

    assert list(answered.columns) == ["prediction"]
    assert answered.shape == (3, 1) and answered["prediction"].dtype == np.float64
    pd.testing.assert_frame_equal(answered, ServedPredictor(served, params).predict(rows))


def test_the_predictor_names_missing_columns_and_checks_its_outputs():
    spec = ModelSpec(n_features=2, n_classes=2, hidden=[3])
    params = get_params(build_model(spec))
    served = ServedModel(spec=spec.model_dump(mode="json"), features=["x", "y"], classes=["no", "yes"])
    predictor = ServedPredictor(served, params)

    with pytest.raises(ValueError, match=r"lacks feature columns \['y'\]"):
        predictor.predict(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match="numeric"):
        predictor.predict(pd.DataFrame({"x": [1.0], "y": ["tall"]}))
    with pytest.raises(ValueError, match=r"columns \['x'\] have missing \(null, NaN\) or infinite values"):
        predictor.predict(pd.DataFrame({"x": [1.0, None], "y": [2.0, 3.0]}))
    with pytest.raises(ValueError, match=r"columns \['y'\]"):
        predictor.predict(pd.DataFrame({"x": [1.0], "y": [np.inf]}))
    assert predictor.predict(pd.DataFrame({"x": [], "y": []})).shape == (0, 2)
    three_classes = served.model_copy(update={"classes": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="answers 2 values per row"):
        ServedPredictor(three_classes, params)
    with pytest.raises(ValueError, match="reads 2 features"):
        ServedPredictor(served.model_copy(update={"features": ["x", "y", "z"]}), params)
    with pytest.raises(ValueError, match="task"):
        ServedPredictor(served.model_copy(update={"task": "regression", "classes": []}), params)


def test_served_model_refuses_what_cannot_be_served():
    spec = {"n_features": 2, "n_classes": 2}
    with pytest.raises(ValidationError, match="at least two class names"):
        ServedModel(spec=spec, features=["x", "y"], classes=["only"])
    with pytest.raises(ValidationError, match="repeated feature names"):
        ServedModel(spec=spec, features=["x", "x"], classes=["0", "1"])
    with pytest.raises(ValidationError, match="no classes"):
        ServedModel(spec=spec, features=["x", "y"], classes=["0", "1"], task="regression")
    with pytest.raises(ValidationError, match="not features"):
        ServedModel(spec=spec, features=["x", "y"], classes=["0", "1"], dtypes={"z": "int64"})
    assert ServedModel(spec=spec, features=["x"], task="regression").outputs == ["prediction"]


@pytest.mark.integration
def test_log_model_refuses_an_example_without_the_feature_columns(tracking_uri: str):
    tracker = new_tracker(tracking_uri, "bad-example")
    served = ServedModel(spec={"n_features": 2, "n_classes": 2}, features=["x", "y"], classes=["0", "1"])

    with pytest.raises(ValueError, match=r"lacking \['y'\]"):
        tracker.log_model(served, {}, pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match="numeric"):
        tracker.log_model(served, {}, pd.DataFrame({"x": [1.0], "y": ["tall"]}))
