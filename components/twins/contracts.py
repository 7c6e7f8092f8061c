"""Twin of the contracts edge: checks a frame against a contract's columns, dtypes and nulls, without GE.

``validate_with_schema`` returns the same ``ValidationSummary`` as ``validate_dataset`` but evaluates only
three expectations per contract column, named as Great Expectations names them:
``expect_column_to_exist``, ``expect_column_values_to_be_of_type`` (``float64`` takes any real number
column, integers included, as ``read_dataset`` would cast them; ``int64`` takes integer columns only; never
booleans) and ``expect_column_values_to_not_be_null``. The contract's suite (ranges, label sets, row
counts) is not evaluated.
"""

from __future__ import annotations

import pandas as pd

from components.core.contract import Contract, ExpectationOutcome, ValidationSummary


def _has_dtype(column: pd.Series, dtype: str) -> bool:
    if pd.api.types.is_bool_dtype(column):
        return False
    if dtype == "int64":
        return pd.api.types.is_integer_dtype(column)
    if dtype == "string":
        return pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)
    return pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column)


def validate_with_schema(frame: pd.DataFrame, contract: Contract) -> ValidationSummary:
    """Columns present, of the contract's dtype and without nulls; the summary holds outcomes only."""
    outcomes: list[ExpectationOutcome] = []
    for name in contract.columns:
        present = name in frame.columns
        column = frame[name] if present else None
        outcomes += [
            ExpectationOutcome(expectation="expect_column_to_exist", column=name, success=present),
            ExpectationOutcome(
                expectation="expect_column_values_to_be_of_type",
                column=name,
                success=column is not None and _has_dtype(column, contract.dtypes[name]),
            ),
            ExpectationOutcome(
                expectation="expect_column_values_to_not_be_null",
                column=name,
                success=column is not None and not bool(column.isna().any()),
            ),
        ]
    return ValidationSummary(
        contract=contract.name,
        version=contract.version,
        success=all(o.success for o in outcomes),
        row_count=len(frame),
        outcomes=outcomes,
    )
