"""Which online parties train in a round (a seeded sample that prefers reliable parties), and in what order."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def select_parties(
    online: Sequence[str],
    fraction: float,
    minimum: int,
    reputation: Mapping[str, float],
    seed: int,
    round_number: int,
) -> list[str]:
    """Sample ``max(minimum, ceil(fraction * len(online)))`` parties, weighted by reputation.

    Everyone is taken when ``fraction >= 1``. Weights are ``0.05 + reputation`` so a party with
    reputation 0 can still be picked now and then. The same seed and round give the same sample.
    """
    ordered = sorted(online)
    if fraction >= 1.0 or len(ordered) <= minimum:
        return ordered
    count = min(len(ordered), max(minimum, math.ceil(fraction * len(ordered))))
    weights = np.array([0.05 + max(reputation.get(p, 0.5), 0.0) for p in ordered])
    rng = np.random.default_rng([seed, round_number])
    chosen = rng.choice(len(ordered), size=count, replace=False, p=weights / weights.sum())
    return sorted(ordered[i] for i in chosen)


def largest_first(parties: Sequence[str], rows: Mapping[str, int]) -> list[str]:
    """``parties`` in the order a round's requests go out: most ``rows`` first, ties by name. On shared cores, or
    sent in waves, a round ends sooner when the longest training starts first."""
    return sorted(parties, key=lambda party: (-rows.get(party, 0), party))
