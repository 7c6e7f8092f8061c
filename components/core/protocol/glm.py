"""Bodies of a GLM sums request and its reply (kinds ``glm_sums`` and ``glm_sums_result``).

The request's tensors: ``beta`` (the coefficients, intercept first), ``standardize.mean`` and
``standardize.scale`` (the pooled standardisation every party applies). The reply's one tensor is ``sums``
(``GlmSums.to_vector``: float64), or under secure aggregation ``masked`` (uint64: the two-limb vector of
``components.core.glm.secure``, masked).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components.core.glm.family import FamilyName


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GlmSumsRequest(_Body):
    family: FamilyName
    parties: int = Field(ge=1, description="how many parties' sums the coordinator adds (a disclosure rule)")
    contract_hash: str | None = Field(
        default=None, max_length=80, description="the coordinator's Contract.content_hash; a party with another refuses"
    )
    secagg_bundle: dict[str, Any] | None = Field(
        default=None, description="secure aggregation: the shares for this party; reply with a masked vector"
    )


class GlmSumsReply(_Body):
    count: int = Field(ge=0, description="the rows behind the sums")
