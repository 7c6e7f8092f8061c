"""Exact Shapley values: every one of the 2^n coalitions is evaluated (in one batch)."""

from __future__ import annotations

from math import factorial

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.core.errors import ConfigError
from components.core.valuation.game import CoalitionUtility


class ExactOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_parties: int = Field(default=8, ge=1, le=20, description="refuse more parties (2^n evaluations)")
    workers: int = Field(default=1, ge=1)


def exact_shapley(utility: CoalitionUtility, options: ExactOptions | None = None) -> dict[str, float]:
    """phi_i = sum over S without i of |S|! (n-|S|-1)! / n! * (v(S + i) - v(S))."""
    options = options or ExactOptions()
    players = utility.players
    n = len(players)
    if n > options.max_parties:
        raise ConfigError(
            f"exact Shapley needs 2^{n} = {2**n} coalition evaluations for {n} parties, above max_parties="
            f"{options.max_parties}; raise valuation.options.max_parties or choose 'gtg'"
        )
    masks = np.arange(2**n)
    coalitions = [frozenset(p for bit, p in enumerate(players) if mask >> bit & 1) for mask in masks]
    v = np.array(utility.evaluate_many(coalitions))
    sizes = np.array([len(c) for c in coalitions])
    weight_by_size = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    values: dict[str, float] = {}
    for bit, player in enumerate(players):
        without = masks[(masks >> bit & 1) == 0]
        values[player] = float(np.sum(weight_by_size[sizes[without]] * (v[without | (1 << bit)] - v[without])))
    return values
