"""Typed records the run's parts hand each other, and the flow's tasks pass along (no tensors inside)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from components.core.contract import ValidationSummary
from components.run.summary import ModelReward, RoundMetrics, RoundRow, ValuationReport


class ValidationResult(BaseModel):
    """Every party's contract check: summaries (pass/fail per expectation) and manifests, never values."""

    summaries: dict[str, ValidationSummary]
    manifests: dict[str, dict[str, Any]]

    @property
    def failures(self) -> list[str]:
        """``party: expectation(column), ...`` for each party whose data broke the contract."""
        return [f"{party}: {', '.join(s.failed)}" for party, s in sorted(self.summaries.items()) if not s.success]


class RoundResult(BaseModel):
    """A trained round before evaluation: who took part, what was refused, what it cost."""

    round: int
    participants: list[str]
    party_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    rejected: dict[str, str] = Field(default_factory=dict)
    bytes_up: int
    bytes_down: int
    seconds: float = 0.0
    epsilon: float | None = None

    def evaluated(self, metrics: RoundMetrics, extra_seconds: float) -> RoundRow:
        """The finished round's row, with the global model's metrics and the evaluation time added."""
        fields = self.model_dump()
        fields["seconds"] += extra_seconds
        return RoundRow(metrics=metrics, **fields)


class Contributions(BaseModel):
    """What each party's updates were worth, per round and in total, and how that was (or was not) computed."""

    method: str
    per_round: dict[int, dict[str, float]] = Field(default_factory=dict)
    totals: dict[str, float] = Field(default_factory=dict)
    report: ValuationReport | None = None


class Rewards(BaseModel):
    """The pool's split and each party's reward model."""

    shares: dict[str, float]
    models: dict[str, ModelReward] = Field(default_factory=dict)


class ReputationChange(BaseModel):
    """A party's reputation after this run and the run's inputs to it."""

    party: str
    reputation: float
    inputs: dict[str, Any]


class Candidate(BaseModel):
    """A run's final model as logged on its tracking run (servable, not yet registered) and its held-out metrics."""

    model_uri: str
    metrics: dict[str, float]
