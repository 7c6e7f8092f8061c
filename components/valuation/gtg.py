"""GTG-Shapley (Liu et al. 2022): guided, truncated Monte Carlo Shapley for one federated round.

- Between-round truncation: a round whose model gained (or lost) no more than ``skip_below`` over its
  starting model is not valued; everyone gets 0 at the cost of two evaluations. The caller may pass the
  starting model's utility it already knows from the previous round (``start_utility``), saving one.
- Guided sampling: permutations come in cycles of n, each party first in exactly one of them, so the
  large first-position marginal (the jump from the starting model) is shared evenly.
- Within-round truncation: a permutation stops once its prefix is within ``truncation`` times the
  round's gain of v(N); the remaining parties get 0 for it.
- Convergence: stop after a cycle that moved the estimate by less than ``tolerance`` (relative L1).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.valuation.game import CoalitionUtility
from components.valuation.permutations import Order, monte_carlo_shapley


class GTGOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skip_below: float = Field(default=1e-3, ge=0, description="|v(N) - v(empty)| at or below which a round is 0")
    truncation: float = Field(default=0.05, ge=0, lt=1, description="within-round, as a share of the round's gain")
    tolerance: float = Field(default=0.05, gt=0, description="relative L1 change of one cycle that ends sampling")
    min_cycles: int = Field(default=2, ge=2)
    max_permutations: int = Field(default=1000, ge=1)
    seed: int = 0
    workers: int = Field(default=1, ge=1)


def gtg_shapley(utility: CoalitionUtility, options: GTGOptions | None = None) -> dict[str, float]:
    """GTG-Shapley estimate of each player's value in ``utility``."""
    options = options or GTGOptions()
    players = utility.players
    v_empty, v_full = utility.evaluate_many([frozenset(), utility.grand])
    gain = abs(v_full - v_empty)
    if gain <= options.skip_below:
        return dict.fromkeys(players, 0.0)
    rng = np.random.default_rng(options.seed)

    def guided_cycle() -> list[Order]:
        cycle = []
        for first in players:
            others = [p for p in players if p != first]
            cycle.append((first, *(others[i] for i in rng.permutation(len(others)))))
        return cycle

    return monte_carlo_shapley(
        utility,
        guided_cycle,
        v_empty,
        v_full,
        truncate_within=options.truncation * gain,
        tolerance=options.tolerance,
        min_batches=options.min_cycles,
        max_permutations=options.max_permutations,
    )
