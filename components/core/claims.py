"""What a party's claims may weigh: an example count bounded by the rows it validated, a share of the aggregate
bounded by the federation's per-party cap. Pure functions; the rounds apply them to every update."""

from __future__ import annotations

from collections.abc import Mapping


def bounded_examples(claimed: int, validated: int) -> int:
    """The example count an update may weigh with: its claim, at most the rows the party validated this run."""
    return min(claimed, validated)


def cap_shares(weights: Mapping[str, float], max_share: float) -> dict[str, float]:
    """Weights lowered (never raised) so that no party holds more than ``max_share`` of their sum.

    The largest weights are lowered to one common level ``c`` chosen so that each of them is exactly
    ``max_share`` of the new sum (water-filling); the others keep theirs. When ``max_share`` is below
    ``1 / len(weights)`` no split can honour it, and every party gets the same weight (the smallest
    possible largest share). ``{a: 1, b: 1, c: 8}`` at 0.5 gives ``{a: 1, b: 1, c: 2}``."""
    if not weights or max_share >= 1:
        return dict(weights)
    if max_share * len(weights) <= 1:
        return dict.fromkeys(weights, 1.0)
    order = sorted(weights, key=lambda party: weights[party], reverse=True)
    level = float(weights[order[0]])
    for capped in range(len(order)):
        rest = sum(float(weights[p]) for p in order[capped:])
        if capped * max_share >= 1:  # the capped parties alone are within the cap at any common level
            level = float(weights[order[capped - 1]])
            break
        level = max_share * rest / (1 - capped * max_share)
        if weights[order[capped]] <= level:
            break
    return {party: min(float(weight), level) for party, weight in weights.items()}
