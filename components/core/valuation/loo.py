"""Leave-one-out: a party's value is what the round's model loses without it, v(N) - v(N without i)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from components.core.valuation.game import CoalitionUtility


class LOOOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1)


def leave_one_out(utility: CoalitionUtility) -> dict[str, float]:
    """n + 1 evaluations in one batch; the empty coalition is never needed."""
    grand = utility.grand
    v_full, *without = utility.evaluate_many([grand, *(grand - {p} for p in utility.players)])
    return {p: v_full - v for p, v in zip(utility.players, without, strict=True)}
