"""A data contract as data: columns, dtypes, classes and the expectation suite; and what validating it may reveal."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class Contract(BaseModel):
    """One version of a dataset's contract: column order, dtypes, classes and the expectation suite."""

    name: str
    version: int = Field(ge=1)
    target: str
    features: list[str] = Field(min_length=1)
    dtypes: dict[str, Literal["float64", "int64"]]
    classes: list[int] = Field(min_length=2)
    description: str = ""
    suite: dict[str, Any]

    @model_validator(mode="after")
    def _columns_have_dtypes(self) -> Contract:
        untyped = [c for c in self.columns if c not in self.dtypes]
        if untyped:
            raise ValueError(f"columns without a dtype: {untyped}")
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed as a feature")
        return self

    @property
    def columns(self) -> list[str]:
        """Features then target: the order ``read_dataset`` returns."""
        return [*self.features, self.target]

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def ref(self) -> str:
        """``name@v<version>``, e.g. ``breast_cancer@v1``."""
        return f"{self.name}@v{self.version}"


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
