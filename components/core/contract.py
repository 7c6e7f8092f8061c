"""A data contract as data: columns, dtypes, task, classes and the expectation suite; and what validating it may reveal.

The task and the labels: a classification contract lists its ``classes`` (integers or text, as the CSV holds
them); a label's position in that list is the class index the model predicts. A regression contract lists no
classes and has a numeric target. ``content_hash`` fingerprints the whole contract (schema and suite), so two
processes can tell whether they hold the same copy without shipping it.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from components.core.tasks import TaskKind

FeatureDtype = Literal["float64", "int64"]
TargetDtype = Literal["float64", "int64", "string"]
HASH_PREFIX = "sha256:"
HASH_HEX_CHARS = 16  # 64 bits: enough to tell copies apart; the full digest is ``content_digest``
CONTRACT_MISMATCH = "contract_mismatch"  # the error code of a party whose contract copy has another hash


class Contract(BaseModel):
    """One version of a dataset's contract: column order, dtypes, task, classes and the expectation suite.

    ``task`` defaults from ``classes``: none = regression, two = binary, more = multiclass (so schemas written
    before tasks existed load unchanged)."""

    name: str
    version: int = Field(ge=1)
    task: TaskKind
    target: str
    features: list[str] = Field(min_length=1)
    dtypes: dict[str, TargetDtype]
    classes: list[int | str] = Field(default_factory=list)
    input_shape: list[int] | None = Field(default=None, description="each row as this shape, e.g. [1, 8, 8]")
    description: str = ""
    suite: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _default_task(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("task") is None:
            classes = data.get("classes") or []
            data = {**data, "task": "regression" if not classes else "binary" if len(classes) == 2 else "multiclass"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        untyped = [c for c in self.columns if c not in self.dtypes]
        if untyped:
            raise ValueError(f"columns without a dtype: {untyped}")
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed as a feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError("a feature is listed twice")
        text_features = [c for c in self.features if self.dtypes[c] == "string"]
        if text_features:
            raise ValueError(f"features must be float64 or int64, not string: {text_features}")
        self._check_target()
        if self.input_shape is not None:
            if not self.input_shape or any(d < 1 for d in self.input_shape):
                raise ValueError(f"input_shape {self.input_shape} must be positive sizes")
            if math.prod(self.input_shape) != self.n_features:
                raise ValueError(
                    f"input_shape {self.input_shape} holds {math.prod(self.input_shape)} values, "
                    f"not the {self.n_features} features"
                )
        return self

    def _check_target(self) -> None:
        dtype = self.dtypes[self.target]
        if self.task == "regression":
            if self.classes:
                raise ValueError("a regression contract lists no classes")
            if dtype == "string":
                raise ValueError("a regression target is float64 or int64, not string")
            return
        if self.task == "binary" and len(self.classes) != 2:
            raise ValueError(f"a binary contract has exactly 2 classes, not {len(self.classes)}")
        if len(self.classes) < 2:
            raise ValueError(f"a classification contract needs at least 2 classes, not {len(self.classes)}")
        if len({(type(c), c) for c in self.classes}) != len(self.classes):
            raise ValueError("a class is listed twice")
        wanted = {"int64": int, "string": str}.get(dtype)
        if wanted is None:
            raise ValueError("a classification target is int64 or string, not float64")
        mistyped = [c for c in self.classes if type(c) is not wanted]
        if mistyped:
            raise ValueError(f"target {self.target!r} is {dtype}; these classes are not: {mistyped[:5]}")

    @property
    def columns(self) -> list[str]:
        """Features then target: the order ``read_dataset`` returns."""
        return [*self.features, self.target]

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_classes(self) -> int:
        """Model outputs: the number of classes, or 1 for regression."""
        return len(self.classes) if self.classes else 1

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def ref(self) -> str:
        """``name@v<version>``, e.g. ``breast_cancer@v1``."""
        return f"{self.name}@v{self.version}"

    # ---- labels ----
    def class_index(self) -> dict[int | str, int]:
        """Label -> class index (its position in ``classes``); text labels are keyed as text."""
        return {label: index for index, label in enumerate(self.classes)}

    def label_indices(self, labels: Iterable[Any]) -> list[int]:
        """Class indices of ``labels`` (each taken as the target's dtype); ValueError names unknown labels."""
        index = self.class_index()
        as_label = str if self.dtypes[self.target] == "string" else _whole_number
        keyed = [as_label(label) for label in labels]
        unknown = sorted({str(label) for label in keyed if label not in index})
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise ValueError(f"{len(unknown)} label(s) not among the classes of {self.ref}: {shown}")
        return [index[label] for label in keyed]

    def labels_of(self, indices: Iterable[int]) -> list[int | str]:
        """The labels of class indices (what a prediction means in the data owner's terms)."""
        return [self.classes[int(i)] for i in indices]

    # ---- identity ----
    def canonical_json(self) -> str:
        """The whole contract (schema and suite) as JSON: sorted keys, no spaces, fields at their default left out
        (so a field added to this model later, with a default, keeps the hashes of existing contracts)."""
        dumped = self.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @property
    def content_digest(self) -> str:
        """Full sha256 hex digest of ``canonical_json``."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @property
    def content_hash(self) -> str:
        """``sha256:`` and the first 16 hex digits of ``content_digest``: what requests carry and messages show."""
        return HASH_PREFIX + self.content_digest[:HASH_HEX_CHARS]

    def schema_dict(self) -> dict[str, Any]:
        """What ``schema.json`` holds: everything but the suite (``input_shape`` only when declared)."""
        schema = self.model_dump(mode="json", exclude={"suite"})
        if schema["input_shape"] is None:
            del schema["input_shape"]
        return schema


def _whole_number(value: Any) -> int:
    """An integer label: ints (numpy's too) as they are, whole floats as ints; anything else is a ValueError."""
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"label {value!r} is not a whole number") from None


class ExpectationOutcome(BaseModel):
    """Whether one expectation held; deliberately carries no observed or unexpected values."""

    expectation: str
    column: str | None = None
    success: bool


class ValidationSummary(BaseModel):
    """What a party may share about its data: pass/fail per expectation and the row count."""

    contract: str
    version: int
    success: bool
    row_count: int
    outcomes: list[ExpectationOutcome]

    @property
    def failed(self) -> list[str]:
        """Failed expectations as ``expectation(column)`` strings."""
        return [o.expectation + (f"({o.column})" if o.column else "") for o in self.outcomes if not o.success]
