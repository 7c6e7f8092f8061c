"""Body of a federated statistics request; the reply's body is a ``components.core.federated_stats.PartyStats``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StatsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    edges: dict[str, list[float]] = Field(
        default_factory=dict, description="histogram bin edges per feature (none: no histogram)"
    )
    contract_hash: str | None = Field(
        default=None, max_length=80, description="the coordinator's Contract.content_hash; a party with another refuses"
    )
