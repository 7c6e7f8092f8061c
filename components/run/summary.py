"""The run summary: the one shape that scripts, benchmarks and the dashboard read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from components.core.errors import RunStateError
from components.core.fairness import FederatedEvaluation
from components.core.gates import Approval, GateResult
from components.core.glm.summary import GlmSummary

AWAITING_APPROVAL = "awaiting approval"
TAG_CHARS = 5000  # MLflow keeps tag values up to 8000 characters


class RoundMetrics(BaseModel):
    """A global model's metrics: classification fills accuracy and ROC AUC, regression rmse, mae and r2;
    ``loss`` is log loss or mean squared error."""

    loss: float
    accuracy: float | None = None
    roc_auc: float | None = None
    rmse: float | None = None
    mae: float | None = None
    r2: float | None = None

    def present(self) -> dict[str, float]:
        """The metrics this task measured, in a fixed order (accuracy, roc_auc, rmse, mae, r2, loss)."""
        order = ("accuracy", "roc_auc", "rmse", "mae", "r2", "loss")
        return {name: value for name in order if (value := getattr(self, name)) is not None}


class RoundRow(BaseModel):
    """One finished training round."""

    round: int
    participants: list[str]
    metrics: RoundMetrics
    party_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    rejected: dict[str, str] = Field(default_factory=dict)
    bytes_up: int
    bytes_down: int
    seconds: float
    epsilon: float | None = None


class Promotion(BaseModel):
    """A promotion decision: ``reason`` is the one line to show, ``gates`` every gate's answer."""

    # "promoted" | "kept" | "awaiting approval" (held for a person; not final) | "deferred" (logged, not
    # registered: a sweep trial or a reproduction)
    decision: str
    reason: str
    model_name: str
    version: int | None = None  # the version registered for this run's model
    champion_version: int | None = None  # the version the alias names after this decision
    alias: str = "champion"
    metric: str = "accuracy"
    candidate_value: float | None = None
    champion_value: float | None = None
    challenger_alias: str | None = None  # the alias the registered version got as the candidate
    gates: list[GateResult] = Field(default_factory=list)
    approval: Approval | None = None  # a person's answer, when the policy required one
    fairness_gap: float | None = None  # of ``metric``, over the parties' own evaluations

    @property
    def awaiting_approval(self) -> bool:
        return self.decision == AWAITING_APPROVAL

    def tags(self) -> dict[str, str]:
        """``promotion.*`` tags (of the registered version and the tracking run): the decision, its reason,
        every gate's answer and the reviewer's."""
        tags = {
            "promotion.decision": self.decision,
            "promotion.reason": self.reason[:TAG_CHARS],
            **{
                f"promotion.gate.{g.name}": f"{'passed' if g.passed else 'failed'}: {g.reason}"[:TAG_CHARS]
                for g in self.gates
            },
        }
        if self.approval is not None:
            tags["promotion.reviewer"] = self.approval.reviewer
            tags["promotion.comment"] = self.approval.comment[:TAG_CHARS]
        return tags


class ModelReward(BaseModel):
    """The model a party receives: aggregated from these parties' last-round updates, and how good it is."""

    sources: list[str]
    accuracy: float | None = None  # classification
    metrics: dict[str, float] = Field(default_factory=dict)  # every metric of the task, on the holdout


class ValuationReport(BaseModel):
    """What a contribution means in this run: how it was computed, on what utility, from which rounds, how sure.

    ``errors`` are standard errors of the totals (in the utility's units); ``ranks`` put parties that are
    equal within error on the same rank (``components/core/valuation/run_totals.py``).
    """

    method: str
    utility: str
    rounds_valued: list[int] = Field(default_factory=list)
    rounds_skipped: list[int] = Field(default_factory=list)
    min_round_gain: float = 0.0
    errors: dict[str, float] = Field(default_factory=dict)
    ranks: dict[str, int] = Field(default_factory=dict)
    statement: str = ""


class RunSummary(BaseModel):
    run_id: str
    status: str = "completed"
    error: str | None = None  # why a failed run stopped (the typed error's message)
    started_at: str
    finished_at: str | None = None
    mlflow_run_id: str | None = None
    config: dict[str, Any]
    plan_decisions: dict[str, dict[str, Any]] = Field(default_factory=dict)  # party -> verdict, rule, reason
    validation: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rounds: list[RoundRow] = Field(default_factory=list)
    final_metrics: RoundMetrics | None = None
    centralized_baseline: RoundMetrics | None = None
    contributions: dict[str, float] = Field(default_factory=dict)
    round_contributions: dict[int, dict[str, float]] = Field(default_factory=dict)
    stopped_early: str | None = None
    valuation_method: str = "leave_one_out"
    valuation: ValuationReport | None = None
    rewards: dict[str, float] = Field(default_factory=dict)
    model_rewards: dict[str, ModelReward] = Field(default_factory=dict)
    reputation: dict[str, float] = Field(default_factory=dict)
    rejected_messages: dict[str, int] = Field(default_factory=dict)
    late_messages: dict[str, int] = Field(default_factory=dict)
    promotion: Promotion | None = None
    evaluation: FederatedEvaluation | None = None  # the final model: per-party metrics, holdout, fairness gaps
    manifests: dict[str, str] = Field(default_factory=dict)
    data_versions: dict[str, str] = Field(default_factory=dict)  # DVC path (manifests/P.json, contracts/..) -> md5
    claimed_rows: dict[str, int] = Field(default_factory=dict)  # party -> the row count its manifest states
    glm: GlmSummary | None = None  # kind glm: coefficients, standard errors, tests, deviance, AIC

    def write(self, path: Path) -> Path:
        """Write atomically, so the dashboard and scripts never read a half-written summary."""
        from components.adapters.checkpoints import write_text_atomically  # numpy: not for the CLI's --help

        return write_text_atomically(path, self.model_dump_json(indent=2))

    @classmethod
    def read(cls, path: Path) -> RunSummary:
        return cls.model_validate(json.loads(path.read_text()))


def refuse_finished(path: Path) -> None:
    """Raise ``RunStateError`` if the summary at ``path`` says its run completed: that record is final."""
    if path.exists() and (summary := RunSummary.read(path)).status == "completed":
        raise RunStateError(
            f"run {summary.run_id} completed at {summary.finished_at}: its record (summary, registered model,"
            " promotion) is final and is not redone; start a new run with `consortia run`"
        )
