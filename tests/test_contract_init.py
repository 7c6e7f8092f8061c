"""`consortia contract init` and `show`: a contract drafted from a CSV the project has never seen, read back,
validated, and its labels turned into class indices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from typer.testing import CliRunner

from components.adapters.contracts import (
    draft_contract,
    load_contract,
    read_dataset,
    split_features,
    validate_dataset,
)
from components.core.errors import ContractError
from flows.cli import app

runner = CliRunner()
SHIPPED_TYPES = {
    "expect_column_to_exist",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_table_row_count_to_be_between",
}


def loans_frame(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(50_000, 12_000, rows).round(2),
            "utilisation": rng.random(rows),
            "approved": rng.choice(["yes", "no"], rows),
        }
    )


def yields_frame(rows: int = 40, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rain, sun = rng.uniform(200, 900, rows), rng.uniform(1_000, 2_500, rows)
    return pd.DataFrame({"rain_mm": rain, "sun_hours": sun, "tonnes": 0.004 * rain + 0.001 * sun + rng.random(rows)})


def init(*args: str) -> object:
    result = runner.invoke(app, ["contract", "init", *args])
    return result


@pytest.fixture
def loans(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    frame = loans_frame()
    sample = tmp_path / "loans.csv"
    frame.to_csv(sample, index=False)
    return sample, tmp_path / "contracts", frame


def test_init_drafts_a_binary_contract_with_text_labels_that_loads_validates_and_maps_labels(loans):
    sample, root, frame = loans

    result = init("--from", str(sample), "--target", "approved", "--name", "loans", "--out", str(root))

    assert result.exit_code == 0, result.output
    assert "passes all" in result.output
    contract = load_contract("loans", root=root)
    assert (contract.ref, contract.task, contract.target) == ("loans@v1", "binary", "approved")
    assert contract.features == ["age", "income", "utilisation"]
    assert contract.dtypes == {"age": "int64", "income": "float64", "utilisation": "float64", "approved": "string"}
    assert contract.classes == ["no", "yes"] and contract.n_classes == 2
    assert {e["type"] for e in contract.suite["expectations"]} == SHIPPED_TYPES
    schema = json.loads((root / "loans" / "v1" / "schema.json").read_text())
    assert "input_shape" not in schema and schema["task"] == "binary"

    read = read_dataset(sample, contract)
    summary = validate_dataset(read, contract)
    assert summary.success, summary.failed
    features, labels = split_features(read, contract)
    assert features.dtype == np.float32 and features.shape == (40, 3)
    assert labels.dtype == np.int64
    assert labels.tolist() == [contract.classes.index(v) for v in frame["approved"]]
    assert contract.labels_of(labels) == frame["approved"].tolist()  # round trip: label -> index -> label


def test_a_row_out_of_the_widened_range_fails_validation(loans):
    sample, root, frame = loans
    assert init("--from", str(sample), "--target", "approved", "--name", "loans", "--out", str(root)).exit_code == 0
    contract = load_contract("loans", root=root)
    span = frame["income"].max() - frame["income"].min()

    inside = frame.assign(income=frame["income"].where(frame.index != 0, frame["income"].max() + 0.05 * span))
    outside = frame.assign(income=frame["income"].where(frame.index != 0, frame["income"].max() + 0.5 * span))
    unknown_label = frame.assign(approved=frame["approved"].where(frame.index != 1, "maybe"))

    assert validate_dataset(inside, contract).success
    assert validate_dataset(outside, contract).failed == ["expect_column_values_to_be_between(income)"]
    assert validate_dataset(unknown_label, contract).failed == ["expect_column_values_to_be_in_set(approved)"]
    with pytest.raises(ContractError, match="1 label.* not among the classes of loans@v1: maybe"):
        split_features(unknown_label, contract)


def test_init_drafts_a_regression_contract(tmp_path: Path):
    sample = tmp_path / "yields.csv"
    frame = yields_frame()
    frame.to_csv(sample, index=False)
    root = tmp_path / "contracts"

    result = init(
        "--from", str(sample), "--target", "tonnes", "--name", "yields", "--margin", "0.2", "--out", str(root)
    )

    assert result.exit_code == 0, result.output
    contract = load_contract("yields", root=root)
    assert (contract.task, contract.classes, contract.n_classes) == ("regression", [], 1)
    assert contract.dtypes["tonnes"] == "float64"
    read = read_dataset(sample, contract)
    assert validate_dataset(read, contract).success
    _, values = split_features(read, contract)
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, frame["tonnes"].to_numpy())
    bounds = {
        e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
        for e in contract.suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between"
    }
    low, high = frame["rain_mm"].min(), frame["rain_mm"].max()
    assert bounds["rain_mm"][0] == pytest.approx(low - 0.2 * (high - low), rel=1e-3)
    assert bounds["rain_mm"][1] == pytest.approx(high + 0.2 * (high - low), rel=1e-3)
    assert set(bounds) == {"rain_mm", "sun_hours", "tonnes"}


def test_init_refuses_to_overwrite_a_version_and_names_the_next_free_one(loans):
    sample, root, _ = loans
    args = ["--from", str(sample), "--target", "approved", "--name", "loans", "--out", str(root)]
    assert init(*args).exit_code == 0
    before = (root / "loans" / "v1" / "suite.json").read_text()

    again = init(*args, "--margin", "0.5")

    assert again.exit_code == 1
    assert "loans@v1 already exists" in again.output and "next free version, 2" in again.output
    assert (root / "loans" / "v1" / "suite.json").read_text() == before
    assert init(*args, "--version", "2", "--no-check").exit_code == 0
    assert load_contract("loans", root=root).version == 2


def test_init_refuses_text_features_and_a_wrong_input_shape(tmp_path: Path):
    sample = tmp_path / "wards.csv"
    loans_frame().assign(ward=["north", "south"] * 20).to_csv(sample, index=False)
    root = tmp_path / "contracts"
    args = ["--from", str(sample), "--target", "approved", "--name", "wards", "--out", str(root)]

    text = init(*args)
    assert text.exit_code == 1
    assert "1 feature column(s) are not numeric: ward" in text.output and "--exclude" in text.output

    shape = init(*args, "--exclude", "ward", "--input-shape", "2,2")
    assert shape.exit_code == 1 and "holds 4 values, not the 3 features" in shape.output
    assert not (root / "wards").exists()

    fine = init(*args, "--exclude", "ward", "--input-shape", "1,3", "--no-check")
    assert fine.exit_code == 0, fine.output
    assert load_contract("wards", root=root).input_shape == [1, 3]


def test_task_auto_and_explicit(tmp_path: Path):
    sample = tmp_path / "grades.csv"
    frame = pd.DataFrame({"hours": np.linspace(0, 10, 30), "grade": [1, 2, 3] * 10})
    frame.to_csv(sample, index=False)

    auto = draft_contract(sample, "grades", "grade").contract
    assert (auto.task, auto.dtypes["grade"], auto.classes) == ("multiclass", "int64", [1, 2, 3])
    assert auto.label_indices([3, 1]) == [2, 0]  # the class index is the position in classes, not the label
    assert draft_contract(sample, "grades", "grade", task="regression").contract.task == "regression"
    with pytest.raises(ContractError, match="binary needs exactly 2"):
        draft_contract(sample, "grades", "grade", task="binary")
    with pytest.raises(ContractError, match="fractional numbers"):
        draft_contract(sample, "grades", "hours", task="multiclass")


def test_show_prints_columns_task_classes_and_hash(loans):
    sample, root, _ = loans
    assert init("--from", str(sample), "--target", "approved", "--name", "loans", "--out", str(root)).exit_code == 0
    contract = load_contract("loans", root=root)

    shown = runner.invoke(app, ["contract", "show", "loans", "--contracts", str(root)])

    assert shown.exit_code == 0, shown.output
    for text in ("age", "income", "utilisation", "approved", "int64", "string", "no, yes", "binary", "0=no, 1=yes"):
        assert text in shown.output
    assert contract.content_hash in shown.output
    missing = runner.invoke(app, ["contract", "show", "loans", "--version", "7", "--contracts", str(root)])
    assert missing.exit_code == 1 and "loans@v7" in missing.output


def test_shipped_diabetes_contract_is_regression_and_passes_sklearn_data(tmp_path: Path):
    contract = load_contract("diabetes", 1)
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    path = tmp_path / "diabetes.csv"
    frame.to_csv(path, index=False)

    assert (contract.task, contract.target, contract.n_features, contract.n_classes) == (
        "regression",
        "progression",
        10,
        1,
    )
    assert contract.dtypes["progression"] == "float64"
    assert contract.suite["meta"]["drafted_by"] == "consortia contract init"
    assert validate_dataset(read_dataset(path, contract), contract).success


def test_digits_v2_declares_an_8x8_image_and_v1_is_unchanged():
    v1, v2 = load_contract("digits", 1), load_contract("digits", 2)

    assert v1.input_shape is None and v2.input_shape == [1, 8, 8]
    assert v2.task == "multiclass" and v2.features == v1.features and v2.classes == v1.classes
    assert v2.suite["expectations"] == v1.suite["expectations"]
    assert v1.content_hash != v2.content_hash
