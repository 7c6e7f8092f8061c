"""Data contracts: loading, reading CSVs and validating frames without leaking data values."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from components.adapters.contracts import (
    ExpectationOutcome,
    load_contract,
    read_dataset,
    split_features,
    validate_dataset,
)
from components.core.errors import ContractError

PLANTED = 987654.321


@pytest.fixture(scope="module")
def contract():
    return load_contract("breast_cancer")


@pytest.fixture
def frame(contract) -> pd.DataFrame:
    """The first 12 rows of scikit-learn's breast cancer data under the contract's column names."""
    bunch = load_breast_cancer()
    data = pd.DataFrame(bunch.data[:12], columns=contract.features)
    data[contract.target] = bunch.target[:12].astype(np.int64)
    return data


def failed_outcomes(summary) -> list[ExpectationOutcome]:
    return [o for o in summary.outcomes if not o.success]


def test_contract_describes_breast_cancer(contract):
    assert contract.ref == "breast_cancer@v1"
    assert contract.n_features == 30
    assert contract.n_classes == 2
    assert contract.features[0] == "mean_radius"
    assert contract.features[-1] == "worst_fractal_dimension"
    assert contract.dtypes["diagnosis"] == "int64"


def test_digits_contract_has_64_pixels_and_ten_classes():
    digits = load_contract("digits", 1)

    assert (digits.n_features, digits.n_classes, digits.target) == (64, 10, "digit")
    assert digits.features[:2] == ["pixel_0", "pixel_1"]


def test_unknown_contract_names_the_available_ones():
    with pytest.raises(ContractError, match="available: breast_cancer"):
        load_contract("credit_scores")
    with pytest.raises(ContractError, match="breast_cancer@v99"):
        load_contract("breast_cancer", 99)


def test_sklearn_frame_passes(frame, contract):
    summary = validate_dataset(frame, contract)

    assert summary.success, summary.failed
    assert summary.row_count == 12
    assert summary.failed == []
    assert len(summary.outcomes) == len(contract.suite["expectations"])


def negative_radius(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(mean_radius=frame["mean_radius"].where(frame.index != 2, -1.0))


def null_area(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(mean_area=frame["mean_area"].where(frame.index != 3, np.nan))


def drop_worst_symmetry(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="worst_symmetry")


def label_seven(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(diagnosis=frame["diagnosis"].where(frame.index != 0, 7))


def keep_three_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(3)


@pytest.mark.parametrize(
    ("spoil", "expectation", "column"),
    [
        (negative_radius, "expect_column_values_to_be_between", "mean_radius"),
        (null_area, "expect_column_values_to_not_be_null", "mean_area"),
        (drop_worst_symmetry, "expect_column_to_exist", "worst_symmetry"),
        (label_seven, "expect_column_values_to_be_in_set", "diagnosis"),
        (keep_three_rows, "expect_table_row_count_to_be_between", None),
    ],
)
def test_spoiled_frame_fails_the_right_expectation(frame, contract, spoil, expectation, column):
    spoiled = spoil(frame)

    summary = validate_dataset(spoiled, contract)

    assert not summary.success
    assert ExpectationOutcome(expectation=expectation, column=column, success=False) in summary.outcomes
    suffix = f"({column})" if column else ""
    assert f"{expectation}{suffix}" in summary.failed


def test_summary_carries_no_data_values(frame, contract):
    frame.loc[5, "mean_radius"] = PLANTED
    frame.loc[6, "mean_texture"] = -PLANTED

    summary = validate_dataset(frame, contract)

    assert [(o.expectation, o.column) for o in failed_outcomes(summary)] == [
        ("expect_column_values_to_be_between", "mean_radius"),
        ("expect_column_values_to_be_between", "mean_texture"),
    ]
    text = summary.model_dump_json()
    assert "987654" not in text
    assert "9.87654" not in text


def test_read_dataset_orders_and_casts_columns(frame, contract, tmp_path: Path):
    path = tmp_path / "party.csv"
    shuffled = frame[[contract.target, *reversed(contract.features)]].assign(hospital_ward="B")
    shuffled.to_csv(path, index=False)

    loaded = read_dataset(path, contract)

    assert list(loaded.columns) == contract.columns
    assert loaded[contract.target].dtype == np.int64
    assert (loaded[contract.features].dtypes == np.float64).all()
    pd.testing.assert_frame_equal(loaded, frame)


def test_split_features_gives_float32_features_and_int64_labels(frame, contract):
    features, labels = split_features(frame, contract)

    assert features.dtype == np.float32 and features.shape == (12, 30)
    assert labels.dtype == np.int64 and labels.tolist() == frame["diagnosis"].tolist()
    assert features[0, 0] == np.float32(frame.loc[0, "mean_radius"])


def write_lines(path: Path, contract, rows: list[str]) -> Path:
    path.write_text(",".join(contract.columns) + "\n" + "\n".join(rows) + "\n")
    return path


def good_row(label: int = 0) -> str:
    return ",".join(["1.5"] * 30 + [str(label)])


def test_truncated_row_with_stray_quote_is_a_contract_error(contract, tmp_path: Path):
    path = write_lines(tmp_path / "broken.csv", contract, [good_row(), good_row(), '1.5,2.5,"3.5'])

    with pytest.raises(ContractError, match=r"broken\.csv: not a readable CSV"):
        read_dataset(path, contract)


def test_row_with_extra_fields_is_a_contract_error(contract, tmp_path: Path):
    path = write_lines(tmp_path / "wide.csv", contract, [good_row(), good_row() + ",9.9"])

    with pytest.raises(ContractError, match=r"wide\.csv: not a readable CSV .*line 3"):
        read_dataset(path, contract)


def test_text_in_a_float_column_names_column_and_line_not_value(contract, tmp_path: Path):
    rows = [good_row(), good_row(), good_row().replace("1.5", "secret-text", 1)]
    path = write_lines(tmp_path / "text.csv", contract, rows)

    with pytest.raises(ContractError, match=r"column 'mean_radius' is not a number at 1 line\(s\): 4") as caught:
        read_dataset(path, contract)
    assert "secret-text" not in str(caught.value)


def test_fractional_label_is_a_contract_error(contract, tmp_path: Path):
    path = write_lines(tmp_path / "labels.csv", contract, [good_row(), good_row().removesuffix("0") + "0.5"])

    with pytest.raises(ContractError, match=r"column 'diagnosis' is not a whole number at 1 line\(s\): 3"):
        read_dataset(path, contract)


def test_missing_file_and_missing_columns_are_contract_errors(frame, contract, tmp_path: Path):
    with pytest.raises(ContractError, match="no such file"):
        read_dataset(tmp_path / "absent.csv", contract)

    path = tmp_path / "narrow.csv"
    frame.drop(columns=["mean_radius", "diagnosis"]).to_csv(path, index=False)
    with pytest.raises(ContractError, match="2 column.*missing: mean_radius, diagnosis"):
        read_dataset(path, contract)
