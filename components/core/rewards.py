"""Rewards from contributions: shares of a monetary pool, and models whose quality follows contribution."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping

from components.core.valuation.game import share_within_groups
from components.core.valuation.run_totals import ranks_within_error


def paid_contributions(contributions: Mapping[str, float], errors: Mapping[str, float]) -> dict[str, float]:
    """What rewards are paid on: parties equal within error (a shared rank) each get their group's mean.

    A difference smaller than its error is noise, and paying it out is what left one of three equal
    parties with the floor alone; the run's total is unchanged.
    """
    groups: dict[int, list[str]] = defaultdict(list)
    for party, rank in ranks_within_error(contributions, errors).items():
        groups[rank].append(party)
    return share_within_groups(contributions, [g for g in groups.values() if len(g) > 1])


def allocate_rewards(
    pool: float, contributions: Mapping[str, float], excluded: Collection[str], participation_floor: float
) -> dict[str, float]:
    """Split ``pool`` among the parties of ``contributions`` (and ``excluded``).

    Excluded parties (a refused update, or no round taken part in) get 0. ``participation_floor`` (a
    share of the pool, in [0, 1]) is split equally among the other parties; the rest goes in proportion
    to their positive contributions (negative ones count as 0), or equally when nobody contributed
    anything positive. The shares sum to ``pool`` unless every party is excluded.
    """
    if pool < 0:
        raise ValueError(f"pool must be non-negative, got {pool}")
    if not 0 <= participation_floor <= 1:
        raise ValueError(f"participation_floor must be in [0, 1], got {participation_floor}")
    rewards = dict.fromkeys([*contributions, *excluded], 0.0)
    eligible = [p for p in contributions if p not in excluded]
    if not eligible:
        return rewards
    positive = {p: max(contributions[p], 0.0) for p in eligible}
    total = sum(positive.values())
    floor = pool * participation_floor / len(eligible)
    rest = pool * (1 - participation_floor)
    for party in eligible:
        share = positive[party] / total if total > 0 else 1 / len(eligible)
        rewards[party] = floor + rest * share
    return rewards


def model_reward_tiers(contributions: Mapping[str, float], excluded: Collection[str] = ()) -> dict[str, list[str]]:
    """Per party, whose updates its reward model is aggregated from (CGSV-style, Xu et al. 2021).

    Eligible (not excluded) parties are ranked by contribution. A party with positive contribution c
    gets the updates of the top ``ceil(k * c / c_max)`` of the k eligible parties, plus its own: the top
    contributor gets the full global model; others get it without the lowest contributors, fewer the
    less they contributed. A party with no positive contribution gets its own update only. When nobody
    contributed positively, everyone gets the full model. Excluded parties (a refused update, or no round
    taken part in) get no model (an empty list) and count in nobody's tier.
    """
    eligible = sorted((p for p in contributions if p not in excluded), key=lambda p: (-contributions[p], p))
    tiers: dict[str, list[str]] = {party: [] for party in excluded}
    best = max((contributions[p] for p in eligible), default=0.0)
    for party in eligible:
        share_of_best = max(contributions[party], 0.0) / best if best > 0 else 1.0
        count = math.ceil(len(eligible) * share_of_best)
        tiers[party] = sorted({*eligible[:count], party})
    return tiers
