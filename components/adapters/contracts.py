"""Data contracts: a versioned schema plus a Great Expectations suite per dataset (the only GE importer).

A contract lives in ``data_contracts/<name>/v<version>/`` as ``schema.json`` and ``suite.json``. Reading a
CSV checks what pandas can check (the file parses, the columns exist, values cast to the contract's dtypes);
validating runs the suite and returns a summary that says which expectation passed or failed, never a data value.
``draft_contract`` writes a first contract from a sample CSV (``consortia contract init``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from components.core.contract import Contract, ExpectationOutcome, ValidationSummary
from components.core.errors import ContractError

log = logging.getLogger(__name__)

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
    Columns the contract does not name are ignored, with a warning in this process's log only: nothing
    built from the frame (manifest, validation, training) ever sees them, not even their names.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    text_columns = {c: str for c in contract.columns if contract.dtypes[c] == "string"}
    try:
        raw = pd.read_csv(path, dtype=text_columns or None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ContractError(f"{path}: not a readable CSV ({reason})") from error
    missing = [c for c in contract.columns if c not in raw.columns]
    if missing:
        raise ContractError(
            f"{path}: {len(missing)} column(s) required by {contract.ref} are missing: {_shorten(missing)}"
        )
    extra = [str(c) for c in raw.columns if c not in contract.columns]
    if extra:
        log.warning("%s: ignoring %d column(s) %s does not name: %s", path, len(extra), contract.ref, _shorten(extra))
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
    """Features as float32 (contract order); labels as int64 class indices (classification) or float64 values.

    A label's class index is its position in ``contract.classes``; ContractError names labels the contract
    does not list (they are categories, not measurements)."""
    features = frame[contract.features].to_numpy(dtype=np.float32)
    return features, target_values(frame[contract.target], contract)


def target_values(column: pd.Series, contract: Contract) -> np.ndarray:
    """What a model learns from the target column: class indices (int64) or regression values (float64)."""
    if not contract.is_classification:
        return column.to_numpy(dtype=np.float64)
    try:
        return np.asarray(contract.label_indices(column.tolist()), dtype=np.int64)
    except (ValueError, TypeError) as error:
        raise ContractError(f"column {contract.target!r}: {error}") from None


def _cast(column: pd.Series, dtype: str, path: Path) -> pd.Series:
    if dtype == "string":
        _raise_at(column.isna(), path, column.name, "is empty; labels cannot be missing")
        return column.astype(str)
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


# ---- drafting a contract from a sample (``consortia contract init``) ----

DraftTask = Literal["auto", "binary", "multiclass", "regression"]
MAX_AUTO_CLASSES = 20  # task auto: a whole-number target with at most this many distinct values is a class label
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_GE_TYPES = {
    "exist": "expect_column_to_exist",
    "not_null": "expect_column_values_to_not_be_null",
    "between": "expect_column_values_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
    "rows": "expect_table_row_count_to_be_between",
}


@dataclass
class Draft:
    """A drafted contract and what its author should know about it (never a data value)."""

    contract: Contract
    ranges: dict[str, tuple[float, float]]
    notes: list[str] = field(default_factory=list)


def draft_contract(
    sample: Path,
    name: str,
    target: str,
    *,
    version: int = 1,
    task: DraftTask = "auto",
    margin: float = 0.1,
    input_shape: Sequence[int] | None = None,
    min_rows: int = 10,
    exclude: Sequence[str] = (),
    description: str | None = None,
) -> Draft:
    """A first contract for the CSV ``sample``: its numeric columns (CSV order) as features, ``target`` as the label.

    Every column must exist and be non-null; numeric columns lie in their observed range widened by ``margin``
    times its span (never below 0 for a column observed non-negative; bounds rounded outward); a classification
    target is one of its observed labels (sorted, so the first is class 0); the table has ``min_rows`` rows.
    Task ``auto``: a text target, or a whole-number one with at most 20 distinct values, is classification
    (binary for 2 labels); any other numeric target is regression. Non-numeric feature columns are refused:
    encode them as numbers, or leave them out with ``exclude``. ContractError says what to fix.
    """
    if not _NAME.match(name):
        raise ContractError(f"contract name {name!r}: use letters, digits, '_', '.' or '-' (at most 64)")
    if margin < 0:
        raise ContractError(f"margin {margin} must be >= 0 (a fraction of each column's observed range)")
    frame = _read_sample(Path(sample), target)
    missing = [c for c in [target, *exclude] if c not in frame.columns]
    if missing:
        raise ContractError(f"{sample}: no column(s) {_shorten(missing)}; it has {_shorten(list(frame.columns))}")
    features = [str(c) for c in frame.columns if c != target and c not in exclude]
    if not features:
        raise ContractError(f"{sample}: no feature columns besides the target {target!r}")
    _refuse_unusable_features(frame, features, sample)
    dtypes: dict[str, str] = {c: "int64" if pd.api.types.is_integer_dtype(frame[c]) else "float64" for c in features}
    ranges = {c: _widened(frame[c], margin, dtypes[c] == "int64") for c in features}
    kind, target_dtype, classes = _target_kind(frame[target], task, target, sample)
    dtypes[target] = target_dtype
    if kind == "regression":
        ranges[target] = _widened(pd.to_numeric(frame[target]), margin, integer=False)
    suite = _draft_suite(name, version, features, target, ranges, classes, min_rows, margin)
    text = description or (
        f"Drafted by `consortia contract init` from {Path(sample).name} ({len(frame)} rows): numeric ranges are the "
        f"observed ones widened by {margin:g} of their span. Edit freely before first use; afterwards bump the version."
    )
    try:
        contract = Contract(
            name=name,
            version=version,
            task=kind,
            target=target,
            features=features,
            dtypes=dtypes,
            classes=classes,
            input_shape=list(input_shape) if input_shape else None,
            description=text,
            suite=suite,
        )
    except ValidationError as error:
        reason = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ContractError(f"{name}@v{version}: {reason}") from None
    notes = []
    if len(frame) < min_rows:
        notes.append(f"the sample has {len(frame)} rows, fewer than the {min_rows} the suite requires")
    if contract.is_classification:
        notes.append("classes are the labels seen in the sample, sorted; add any the sample lacks before first use")
    return Draft(contract, ranges, notes)


def contract_folder(name: str, version: int, root: Path | None = None) -> Path:
    return (root or CONTRACTS_ROOT) / name / f"v{version}"


def next_free_version(name: str, root: Path | None = None) -> int:
    """One more than the highest version of ``name`` under ``root`` (any ``v<N>`` folder counts), or 1."""
    folder = (root or CONTRACTS_ROOT) / name
    taken = [int(d.name[1:]) for d in folder.glob("v*") if d.name[1:].isdigit()] if folder.is_dir() else []
    return max(taken, default=0) + 1


def write_contract(contract: Contract, root: Path | None = None) -> Path:
    """Write ``schema.json`` and ``suite.json`` into a new ``<root>/<name>/v<version>``; never over an existing one."""
    folder = contract_folder(contract.name, contract.version, root)
    if folder.exists():
        raise ContractError(
            f"{contract.ref} already exists in {folder}; contracts are never edited in place: "
            f"write the next free version, {next_free_version(contract.name, root)}, instead"
        )
    folder.mkdir(parents=True)
    (folder / "schema.json").write_text(json.dumps(contract.schema_dict(), indent=2, ensure_ascii=False) + "\n")
    (folder / "suite.json").write_text(json.dumps(contract.suite, indent=2, ensure_ascii=False) + "\n")
    return folder


def suite_bounds(contract: Contract) -> dict[str, dict[str, Any]]:
    """Per column, what the suite checks: ``not_null`` (bool), ``range`` (min, max) and ``in_set`` (labels)."""
    found: dict[str, dict[str, Any]] = {c: {"not_null": False} for c in contract.columns}
    for item in contract.suite.get("expectations") or []:
        kwargs = item.get("kwargs") or {}
        column = found.get(kwargs.get("column"))
        if column is None:
            continue
        kind = item.get("type")
        if kind == _GE_TYPES["not_null"]:
            column["not_null"] = True
        elif kind == _GE_TYPES["between"]:
            column["range"] = (kwargs.get("min_value"), kwargs.get("max_value"))
        elif kind == _GE_TYPES["in_set"]:
            column["in_set"] = list(kwargs.get("value_set") or [])
    return found


def minimum_rows(contract: Contract) -> int | None:
    """The suite's lower bound on the row count, if it has one."""
    for item in contract.suite.get("expectations") or []:
        if item.get("type") == _GE_TYPES["rows"]:
            return (item.get("kwargs") or {}).get("min_value")
    return None


def _read_sample(sample: Path, target: str) -> pd.DataFrame:
    if not sample.is_file():
        raise ContractError(f"{sample}: no such file")
    try:
        frame = pd.read_csv(sample, dtype={target: str})  # the target as written; numbers are parsed below
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ContractError(f"{sample}: not a readable CSV ({reason})") from error
    if frame.empty:
        raise ContractError(f"{sample}: no rows to draft a contract from")
    return frame


def _refuse_unusable_features(frame: pd.DataFrame, features: list[str], sample: Path) -> None:
    text = [c for c in features if pd.api.types.is_bool_dtype(frame[c]) or not is_number_column(frame[c])]
    if text:
        raise ContractError(
            f"{sample}: {len(text)} feature column(s) are not numeric: {_shorten(text)}. Contracts take numeric "
            "features only (for now): encode them as numbers (0/1 for yes/no), or leave them out with --exclude"
        )
    empty = {c: int(frame[c].isna().sum()) for c in features if frame[c].isna().any()}
    if empty:
        listed = _shorten([f"{c} ({n} rows)" for c, n in empty.items()])
        raise ContractError(
            f"{sample}: {len(empty)} feature column(s) have empty values: {listed}. Models take no missing "
            "values: fill or drop them in the sample first"
        )


def is_number_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _target_kind(column: pd.Series, task: DraftTask, target: str, sample: Path) -> tuple[str, str, list[int | str]]:
    """(task, target dtype, classes) for the target column, read as text."""
    if column.isna().any():
        raise ContractError(f"{sample}: target {target!r} is empty in {int(column.isna().sum())} row(s)")
    numbers = pd.to_numeric(column, errors="coerce")
    numeric = not numbers.isna().any()
    whole = numeric and bool(np.isfinite(numbers).all()) and bool(numbers.eq(np.floor(numbers)).all())
    distinct = column.nunique() if not numeric else numbers.nunique()
    regression = task == "regression" or (task == "auto" and numeric and not (whole and distinct <= MAX_AUTO_CLASSES))
    if regression:
        if not numeric:
            raise ContractError(f"{sample}: target {target!r} is not numeric; regression needs numbers")
        return "regression", "float64", []
    if numeric and not whole:
        raise ContractError(
            f"{sample}: target {target!r} holds fractional numbers; class labels are whole numbers or text "
            "(or choose --task regression)"
        )
    classes: list[int | str] = (
        sorted(int(v) for v in numbers.unique()) if numeric else sorted(str(v) for v in column.unique())
    )
    if len(classes) < 2:
        raise ContractError(f"{sample}: target {target!r} has a single label; a classifier needs at least 2")
    if task == "binary" and len(classes) != 2:
        raise ContractError(f"{sample}: target {target!r} has {len(classes)} labels; binary needs exactly 2")
    kind = task if task in ("binary", "multiclass") else "binary" if len(classes) == 2 else "multiclass"
    return kind, "int64" if numeric else "string", classes


def _widened(column: pd.Series, margin: float, integer: bool) -> tuple[float, float]:
    """The observed [min, max] widened by ``margin`` of the span on each side, rounded outward."""
    low, high = float(column.min()), float(column.max())
    span = high - low
    pad = margin * (span if span > 0 else max(abs(high), 1.0))
    lower, upper = low - pad, high + pad
    if low >= 0:
        lower = max(lower, 0.0)
    if integer:
        return float(math.floor(lower)), float(math.ceil(upper))
    exponent = math.floor(math.log10(span or max(abs(low), abs(high)) or 1.0)) - 3
    step, digits = 10.0**exponent, max(0, -exponent)
    lower = min(round(math.floor(lower / step) * step, digits), low)
    upper = max(round(math.ceil(upper / step) * step, digits), high)
    return lower, upper


def _draft_suite(
    name: str,
    version: int,
    features: list[str],
    target: str,
    ranges: dict[str, tuple[float, float]],
    classes: list[int | str],
    min_rows: int,
    margin: float,
) -> dict[str, Any]:
    """Great Expectations 1.x suite JSON with the expectation types (and order) of the shipped suites."""

    def expectation(kind: str, **kwargs: Any) -> dict[str, Any]:
        return {"type": _GE_TYPES[kind], "kwargs": kwargs, "meta": {}, "severity": "critical"}

    columns = [*features, target]
    expectations = [expectation("exist", column=c) for c in columns]
    expectations += [expectation("not_null", column=c) for c in columns]
    expectations += [
        expectation("between", column=c, min_value=lower, max_value=upper) for c, (lower, upper) in ranges.items()
    ]
    if classes:
        expectations.append(expectation("in_set", column=target, value_set=list(classes)))
    expectations.append(expectation("rows", min_value=min_rows))
    try:
        ge_version = package_version("great_expectations")
    except PackageNotFoundError:
        ge_version = "unknown"
    meta = {
        "contract": name,
        "version": version,
        "great_expectations_version": ge_version,
        "drafted_by": "consortia contract init",
        "margin": margin,
    }
    return {"name": f"{name}_v{version}", "expectations": expectations, "meta": meta, "notes": None}
