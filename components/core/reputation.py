"""Party reputation in [0, 1]: liveness, clean messages and contribution, remembered across runs.

For one run with inputs a = rounds answered, m = rounds missed, r = rejected messages,
s = contribution share (the party's part of the run's total positive contribution) and
k = parties sharing it:

    liveness    = (a + 1) / (a + m + 2)          Laplace-smoothed answer rate; 1/2 with no evidence
    cleanliness = 1 / (1 + r)                    each rejected (malformed, hostile) message weighs heavily
    value       = min(1, s * k)                  1 at or above an equal share, 0 for no contribution
    run_score   = liveness * cleanliness * (1 + value) / 2

    reputation  = decay * previous + (1 - decay) * run_score

A reliable, clean party that contributed nothing keeps about half the credit of one that did; a party
that misses rounds or sends rejected messages loses it multiplicatively. ``decay`` sets how long the past
counts: with 0.8, a run's score weighs 20% and fades by a factor 0.8 per later run.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReputationInputs(BaseModel):
    """What one run tells about a party."""

    rounds_answered: int = Field(ge=0)
    rounds_missed: int = Field(ge=0)
    rejected_messages: int = Field(ge=0)
    contribution_share: float = Field(ge=0, le=1, description="share of the run's total positive contribution")
    parties: int = Field(ge=1, description="number of parties the contribution was shared among")


def run_score(inputs: ReputationInputs) -> float:
    """The run's own score in [0, 1] (see the module docstring)."""
    liveness = (inputs.rounds_answered + 1) / (inputs.rounds_answered + inputs.rounds_missed + 2)
    cleanliness = 1 / (1 + inputs.rejected_messages)
    value = min(1.0, inputs.contribution_share * inputs.parties)
    return liveness * cleanliness * (1 + value) / 2


def update_reputation(previous: float, inputs: ReputationInputs, decay: float = 0.8) -> float:
    """Exponentially decayed mix of the previous reputation and this run's score, in [0, 1]."""
    if not 0 <= previous <= 1:
        raise ValueError(f"previous reputation must be in [0, 1], got {previous}")
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    return decay * previous + (1 - decay) * run_score(inputs)
