"""Data contracts: a versioned schema plus a Great Expectations suite per dataset (the only GE importer).

A contract lives in ``data_contracts/<name>/v<version>/`` as ``schema.json`` and ``suite.json``. Reading a
CSV checks what pandas can check (the file parses, the columns exist, values cast to the contract's dtypes);
validating runs the suite and returns a summary that says which expectation passed or failed, never a data value.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from components.core.contract import Contract, ExpectationOutcome, ValidationSummary
from components.core.errors import ContractError

CONTRACTS_ROOT: Path = Path(
    os.environ.get("CONSORTIA_CONTRACTS") or Path(__file__).resolve().parents[2] / "data_contracts"
)

_SHOWN_LINES = 5


def _available_contracts(root: Path | None = None) -> dict[str, list[int]]:
    """Contract name -> sorted versions found under ``root``."""
    folder = root or CONTRACTS_ROOT
    if not folder.is_dir():
        return {}
    found: dict[str, list[int]] = {}
    for version_dir in sorted(folder.glob("*/v*")):
        if version_dir.name[1:].isdigit() and (version_dir / "schema.json").is_file():
            found.setdefault(version_dir.parent.name, []).append(int(version_dir.name[1:]))
    return {name: sorted(versions) for name, versions in sorted(found.items())}


def load_contract(name: str, version: int | None = None, root: Path | None = None) -> Contract:
    """The contract ``name`` at ``version`` (the latest when None)."""
    folder = root or CONTRACTS_ROOT
    available = _available_contracts(folder)
    listing = ", ".join(f"{n} (v{', v'.join(map(str, vs))})" for n, vs in available.items()) or "none"
    if name not in available or (version is not None and version not in available[name]):
        wanted = name if version is None else f"{name}@v{version}"
        raise ContractError(f"no data contract {wanted} in {folder}; available: {listing}")
    chosen = version if version is not None else available[name][-1]
    version_dir = folder / name / f"v{chosen}"
    try:
        schema = json.loads((version_dir / "schema.json").read_text())
        suite = json.loads((version_dir / "suite.json").read_text())
        contract = Contract(**schema, suite=suite)
    except (OSError, json.JSONDecodeError, ValidationError, TypeError) as error:
        raise ContractError(f"contract {name}@v{chosen} in {version_dir} is unreadable: {error}") from error
    if (contract.name, contract.version) != (name, chosen):
        raise ContractError(f"{version_dir}/schema.json declares {contract.ref}, expected {name}@v{chosen}")
    return contract


def read_dataset(path: Path, contract: Contract) -> pd.DataFrame:
    """Read a CSV as the contract's columns (features then target) cast to the contract's dtypes.

    Raises ContractError for a missing or unparsable file, missing columns or values that do not cast.
    Error messages name files, columns and line numbers (header = line 1), never the offending values.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ContractError(f"{path}: not a readable CSV ({reason})") from error
    missing = [c for c in contract.columns if c not in raw.columns]
    if missing:
        raise ContractError(
            f"{path}: {len(missing)} column(s) required by {contract.ref} are missing: {_shorten(missing)}"
        )
    return pd.DataFrame({column: _cast(raw[column], contract.dtypes[column], path) for column in contract.columns})


def validate_dataset(frame: pd.DataFrame, contract: Contract) -> ValidationSummary:
    """Run the contract's expectation suite on ``frame``; the summary holds outcomes only."""
    import great_expectations as gx  # imported on first validation: the coordinator never pays for it

    batches = _whole_frame_batches()  # first: it also makes GE's context the active one
    suite = _expectation_suite(gx, contract)
    batch = batches.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="BOOLEAN_ONLY")
    outcomes = [
        ExpectationOutcome(
            expectation=item.expectation_config.type,
            column=item.expectation_config.kwargs.get("column"),
            success=bool(item.success),
        )
        for item in result.results
    ]
    return ValidationSummary(
        contract=contract.name,
        version=contract.version,
        success=bool(result.success),
        row_count=len(frame),
        outcomes=outcomes,
    )


def _expectation_suite(gx: Any, contract: Contract) -> Any:
    """The contract's suite as Great Expectations builds it; ContractError when GE refuses any expectation.

    GE drops an expectation it cannot build (an unknown type, bad kwargs) with a logged error only; a suite
    that silently lost an expectation would pass data the contract rejects, so a dropped one is an error.
    """
    try:
        suite = gx.ExpectationSuite(**contract.suite)
    except (TypeError, ValueError, gx.exceptions.GreatExpectationsError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ContractError(f"{contract.ref}: the expectation suite is invalid ({reason})") from error
    declared = [e.get("type") if isinstance(e, dict) else e for e in contract.suite.get("expectations") or []]
    if len(suite.expectations) != len(declared):
        built = Counter(e.expectation_type for e in suite.expectations)
        dropped = list((Counter(map(str, declared)) - built).elements())
        raise ContractError(
            f"{contract.ref}: Great Expectations could not build {len(declared) - len(suite.expectations)} "
            f"expectation(s) of the suite: {_shorten(dropped)}"
        )
    return suite


def split_features(frame: pd.DataFrame, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 (contract order) and labels as int64."""
    features = frame[contract.features].to_numpy(dtype=np.float32)
    labels = frame[contract.target].to_numpy(dtype=np.int64)
    return features, labels


def _cast(column: pd.Series, dtype: str, path: Path) -> pd.Series:
    numbers = column if pd.api.types.is_numeric_dtype(column) else pd.to_numeric(column, errors="coerce")
    _raise_at(column.notna() & numbers.isna(), path, column.name, "is not a number")
    if dtype == "float64":
        return numbers.astype(np.float64)
    _raise_at(numbers.isna(), path, column.name, f"is empty; {dtype} values cannot be missing")
    _raise_at(~np.isfinite(numbers) | numbers.ne(np.floor(numbers)), path, column.name, "is not a whole number")
    return numbers.astype(np.int64)


def _raise_at(bad: pd.Series, path: Path, column: Any, problem: str) -> None:
    if not bad.any():
        return
    lines = [int(i) + 2 for i in np.flatnonzero(bad.to_numpy())]
    raise ContractError(f"{path}: column {column!r} {problem} at {len(lines)} line(s): {_shorten(lines)}")


def _shorten(items: list[Any]) -> str:
    shown = ", ".join(map(str, items[:_SHOWN_LINES]))
    return shown + (f" and {len(items) - _SHOWN_LINES} more" if len(items) > _SHOWN_LINES else "")


@cache
def _whole_frame_batches() -> Any:
    """One quiet in-memory GE context with a pandas dataframe asset, built on first use."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    asset = context.data_sources.add_pandas("consortia").add_dataframe_asset("dataset")
    return asset.add_batch_definition_whole_dataframe("whole")
