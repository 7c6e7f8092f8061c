"""Typed bodies of each message kind; parse with ``parse_body`` to get a ProtocolError on bad input."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.core.config import TrainingSpec
from components.core.contract import ValidationSummary
from components.core.errors import ProtocolError
from components.core.model_spec import ModelSpec
from components.core.splits import ValidationSplit

BodyT = TypeVar("BodyT", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Body):
    cores: int = 0
    memory_mb: float = 0.0
    cpu_percent: float = 0.0
    versions: dict[str, str] = Field(default_factory=dict)


class PrivacyBudget(_Body):
    """The most privacy a data owner lets a run spend on its dataset."""

    epsilon: float = Field(gt=0)
    delta: float = Field(gt=0, lt=1)


class Hello(_Body):
    manifest: dict[str, Any]
    resources: Resources = Field(default_factory=Resources)
    privacy_budget: PrivacyBudget | None = None


class Heartbeat(_Body):
    busy: bool = False
    run_id: str = ""
    round: int = 0
    resources: Resources = Field(default_factory=Resources)


class ValidateRequest(_Body):
    contract: str
    version: int
    model: ModelSpec | None = Field(
        default=None, description="the model to train: a party that cannot build it refuses"
    )
    contract_hash: str | None = Field(
        default=None, max_length=80, description="the coordinator's Contract.content_hash; a party with another refuses"
    )


class ValidationReply(_Body):
    summary: ValidationSummary
    manifest: dict[str, Any]
    validation_split: ValidationSplit | None = Field(
        default=None, description="the rows this party holds out of training in this run (none: it trains on all)"
    )


class ProfileRequest(_Body):
    """Ask for the row count and per-feature sums (round 0's standardisation)."""

    contract_hash: str | None = Field(
        default=None, max_length=80, description="the coordinator's Contract.content_hash; a party with another refuses"
    )


class ProfileReply(_Body):
    """Row count; the tensors ``sum`` and ``sum_sq`` hold per-feature sums (never rows)."""

    count: int = Field(ge=0)


class LocalPrivacy(_Body):
    """Local differential privacy: the party clips its update's delta and adds Gaussian noise before sending."""

    clip_norm: float = Field(gt=0)
    noise_multiplier: float = Field(gt=0)


class TrainRequest(_Body):
    model: ModelSpec
    training: TrainingSpec
    secagg_bundle: dict[str, Any] | None = Field(
        default=None, description="secure aggregation: the shares for this party; reply with a masked vector"
    )
    epsilon_after_round: float | None = Field(default=None, ge=0, description="DP spend if this round runs")
    local_privacy: LocalPrivacy | None = Field(default=None, description="privatise the update before sending it")
    delta: float | None = None
    contract_hash: str | None = Field(
        default=None, max_length=80, description="the coordinator's Contract.content_hash; a party with another refuses"
    )


class UpdateReply(_Body):
    num_examples: int = Field(ge=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    seconds: float = Field(default=0.0, ge=0)


class EvaluateRequest(_Body):
    model: ModelSpec
    contract_hash: str | None = Field(
        default=None, max_length=80, description="the coordinator's Contract.content_hash; a party with another refuses"
    )


class EvaluationReply(_Body):
    num_examples: int = Field(ge=0)
    metrics: dict[str, float]
    validation_split: bool = Field(default=False, description="measured on held-out rows (False: on all its rows)")


class RunEnded(_Body):
    """The body of SHUTDOWN: how the run ended and, for a failed run, why (empty from older coordinators)."""

    status: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, max_length=2000)


class ErrorReply(_Body):
    code: str = Field(max_length=64)
    message: str = Field(max_length=2000)


def parse_body(model: type[BodyT], body: dict[str, Any]) -> BodyT:
    """Validate a body against its model, raising ProtocolError with the first problem.

    Validation runs in JSON mode, so bytes fields arrive as base64 text as they were sent."""
    try:
        return model.model_validate_json(json.dumps(body))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise ProtocolError(f"invalid {model.__name__} body at {where}: {first.get('msg')}", code="body") from None
