"""Validation-free scores in the style of CGSV (Xu et al. 2021): cosine of each update with the aggregate.

A party's score is cos(delta_i, delta), where delta_i is its update minus the round's starting model
and delta is the FedAvg aggregate minus the same. It needs no validation data and no coalition
evaluation, but it rewards agreeing with the majority, not usefulness: a party that sends a scaled
copy of the aggregate scores 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from components.core.kernels import weighted_mean
from components.core.params import flatten
from components.core.strategies.base import ClientUpdate


class CGSVOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; 0 when either vector is zero."""
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms > 0 else 0.0


def cgsv_scores(updates: Sequence[ClientUpdate], current: Mapping[str, np.ndarray]) -> dict[str, float]:
    """cos(update - current, FedAvg(updates) - current) for each party, in [-1, 1]."""
    names = list(current)

    def vector(params: Mapping[str, np.ndarray]) -> np.ndarray:
        return flatten({name: params[name] for name in names})

    start = vector(current)
    aggregate = vector(weighted_mean([u.params for u in updates], [float(u.num_examples) for u in updates]))
    return {u.party: cosine(vector(u.params) - start, aggregate - start) for u in updates}
