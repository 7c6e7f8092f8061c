"""The run plan a party sees before any work on its data, and its answer (bodies of ``plan`` and ``decision``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.core.model_spec import ModelSpec
from components.core.splits import ValidationSplit

Verdict = Literal["accept", "reject", "hold"]


class PlannedPrivacy(BaseModel):
    """The run's differential privacy, as its strategy chain applies it."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["central", "local"]
    noise_multiplier: float = Field(ge=0)
    clip_norm: float = Field(gt=0)


class RunPlan(BaseModel):
    """Everything a run will ask of a party, sent to it first: the party accepts, rejects or holds it."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=128)
    purpose: Literal["training", "statistics"] = Field(
        default="training", description="training: the rounds below; statistics: one round of descriptive statistics"
    )
    federation: str = Field(max_length=64)
    model: ModelSpec
    strategies: list[str] = Field(min_length=1, description="the strategy chain, outermost first")
    rounds: int = Field(ge=1)
    local_epochs: int = Field(ge=1)
    secure_aggregation: bool = False
    privacy: PlannedPrivacy | None = None
    sent_back: list[str] = Field(description="what leaves the party each round, one line each")
    validation: ValidationSplit | None = Field(
        default=None, description="the rows the run asks each party to hold out of training and evaluate on"
    )


class PlanDecision(BaseModel):
    """A party's answer to a plan: ``rule`` names the policy rule a rejected plan broke."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    rule: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=2000)
    decided_by: Literal["policy", "person"] = "policy"
