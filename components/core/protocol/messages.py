"""Envelope and message kinds: a closed set, validated where they are built."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROTOCOL_VERSION = 1
ALLOWED_DTYPES = ("float32", "float64", "int64", "uint32", "uint64")
NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
HELLO_REQUIRED = "hello_required"  # error code: the coordinator does not know this party yet (e.g. it restarted)


class Kind(StrEnum):
    """Every message kind. Requests flow coordinator -> party, replies party -> coordinator."""

    HELLO = "hello"  # party announces itself (and its manifest) on connect
    WELCOME = "welcome"  # coordinator acknowledges a hello
    HEARTBEAT = "heartbeat"  # party liveness and resource snapshot
    PLAN = "plan"  # request: the run plan, before any work on the party's data
    DECISION = "decision"  # reply: accept or reject (naming the rule), sent once decided (a person may hold it)
    VALIDATE = "validate"  # request: check the local dataset against the contract
    VALIDATION = "validation"  # reply: summary only
    PROFILE = "profile"  # request: summary statistics for input standardisation
    PROFILE_RESULT = "profile_result"  # reply: count, sums and sums of squares per feature
    TRAIN = "train"  # request: global weights plus training settings
    UPDATE = "update"  # reply: new local weights plus metrics
    EVALUATE = "evaluate"  # request: evaluate the given weights locally
    EVALUATION = "evaluation"  # reply: metrics only
    GLM_SUMS = "glm_sums"  # request: a GLM's sums at given coefficients (components.core.protocol.glm)
    GLM_SUMS_RESULT = "glm_sums_result"  # reply: the sums (never rows)
    STATS = "stats"  # request: descriptive statistics per feature (components.core.protocol.stats)
    STATS_RESULT = "stats_result"  # reply: the statistics, suppressed where too few rows back them
    SECAGG_SETUP = "secagg_setup"  # request: start a secure-aggregation round (config); reply: SECAGG_KEYS
    SECAGG_KEYS = "secagg_keys"  # reply: the party's public keys for this round
    SECAGG_ROSTER = "secagg_roster"  # request: everyone's public keys; reply: SECAGG_SHARES
    SECAGG_SHARES = "secagg_shares"  # reply: encrypted Shamir shares for the other parties
    SECAGG_UNMASK = "secagg_unmask"  # request: who survived; reply: SECAGG_REVEAL
    SECAGG_REVEAL = "secagg_reveal"  # reply: the shares that remove the masks from the sum
    ERROR = "error"  # reply: a typed error instead of content
    SHUTDOWN = "shutdown"  # coordinator tells a party the federation is over
    BYE = "bye"  # party disconnects (it may come back)
    REGISTER = "register"  # party records or updates its profile in the coordinator's registry
    LEAVE = "leave"  # party leaves the federation: its profile and key are deleted


REQUEST_REPLY = {
    Kind.PLAN: Kind.DECISION,
    Kind.VALIDATE: Kind.VALIDATION,
    Kind.PROFILE: Kind.PROFILE_RESULT,
    Kind.TRAIN: Kind.UPDATE,
    Kind.EVALUATE: Kind.EVALUATION,
    Kind.GLM_SUMS: Kind.GLM_SUMS_RESULT,
    Kind.STATS: Kind.STATS_RESULT,
    Kind.SECAGG_SETUP: Kind.SECAGG_KEYS,
    Kind.SECAGG_ROSTER: Kind.SECAGG_SHARES,
    Kind.SECAGG_UNMASK: Kind.SECAGG_REVEAL,
}


class TensorSpec(BaseModel):
    """Header of one raw tensor frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    dtype: str
    shape: tuple[int, ...]

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in ALLOWED_DTYPES:
            raise ValueError(f"dtype {value!r} not allowed; one of {ALLOWED_DTYPES}")
        return value

    @field_validator("shape")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) > 8 or any(d < 0 for d in value):
            raise ValueError("shape must have at most 8 non-negative dimensions")
        return value


class Envelope(BaseModel):
    """The typed header frame of every message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = PROTOCOL_VERSION
    kind: Kind
    run_id: str = Field(default="", max_length=128)
    round: int = Field(default=0, ge=0, le=1_000_000)
    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    reply_to: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    sender: str = Field(pattern=NAME_PATTERN)
    body: dict[str, Any] = Field(default_factory=dict)
    tensors: list[TensorSpec] = Field(default_factory=list, max_length=4096)

    def reply(self, kind: Kind, sender: str, body: dict[str, Any] | None = None) -> Envelope:
        """An envelope answering this one, same run and round."""
        return Envelope(
            kind=kind,
            run_id=self.run_id,
            round=self.round,
            reply_to=self.message_id,
            sender=sender,
            body=body or {},
        )
