"""TMC-Shapley (Ghorbani and Zou 2019): truncated Monte Carlo over uniformly random permutations.

A permutation stops once its prefix is within ``truncation * |v(N)|`` of v(N) (the paper's performance
tolerance); sampling stops after a batch of n permutations that moved the estimate by less than
``tolerance`` (relative L1 change).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.core.valuation.game import CoalitionUtility, Estimate
from components.core.valuation.permutations import Order, monte_carlo_shapley


class TMCOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    truncation: float = Field(default=0.01, ge=0, lt=1, description="performance tolerance, a share of |v(N)|")
    tolerance: float = Field(default=0.05, gt=0, description="relative L1 change of one batch that ends sampling")
    min_batches: int = Field(default=2, ge=2)
    max_permutations: int = Field(default=1000, ge=1)
    seed: int = 0
    workers: int = Field(default=1, ge=1)


def tmc_shapley(utility: CoalitionUtility, options: TMCOptions | None = None) -> Estimate:
    """TMC-Shapley estimate of each player's value in ``utility``."""
    options = options or TMCOptions()
    players = utility.players
    v_empty, v_full = utility.evaluate_many([frozenset(), utility.grand])
    rng = np.random.default_rng(options.seed)

    def random_batch() -> list[Order]:
        return [tuple(players[i] for i in rng.permutation(len(players))) for _ in players]

    return monte_carlo_shapley(
        utility,
        random_batch,
        v_empty,
        v_full,
        truncate_within=options.truncation * abs(v_full),
        tolerance=options.tolerance,
        resolution=0.0,
        min_batches=options.min_batches,
        max_permutations=options.max_permutations,
    )
