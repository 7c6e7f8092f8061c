"""A run's contributions from its rounds' values: which rounds count, the totals, and how sure they are.

Between-round truncation (GTG-Shapley's, Liu et al. 2022, made relative): a round is valued only if its
global utility moved, |v(N) - v(empty)|, by at least ``min_round_gain`` times the run's largest move.
Late rounds of a converged run gain almost nothing, yet their marginals are as large as ever and of
random sign, so summing them adds noise, not information (on an IID split into three equal parties, an
80-round run paid 60%, 37% and 3% of the pool). Relative to the run's own largest move, the rule reads
the same for a loss and an accuracy utility.

The standard error of a party's total combines two sources:

- across rounds: a party's value in round r is compared with its average share of that round's total,
  ``e_r = x_r - w_r * T / W`` (``x_r`` its value, ``w_r`` the round's total over parties, ``T`` and ``W``
  their sums over the valued rounds); ``R / (R - 1) * sum e_r^2`` is the variance of the total if rounds
  were independent draws of its share (0 with one valued round);
- across permutations: the Monte Carlo variance of each round's estimate (0 for exact methods), summed.

Two parties are *equal within error* when their totals are closer than twice the sum of their errors
(their intervals of two standard errors overlap).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel

from components.core.kernels import weighted_mean
from components.core.params import Params
from components.core.strategies.base import ClientUpdate
from components.core.valuation import valuation_options, value_round
from components.core.valuation.round_utility import Evaluate


def valued_rounds(gains: Mapping[int, float], min_round_gain: float) -> list[int]:
    """The rounds whose |gain| is at least ``min_round_gain`` times the largest |gain| (none if nothing moved)."""
    largest = max((abs(g) for g in gains.values()), default=0.0)
    if largest <= 0:
        return []
    return sorted(r for r, g in gains.items() if abs(g) >= min_round_gain * largest)


def run_totals(
    per_round: Mapping[int, Mapping[str, float]],
    round_errors: Mapping[int, Mapping[str, float]],
    parties: Iterable[str],
) -> tuple[dict[str, float], dict[str, float]]:
    """Each party's total over ``per_round`` and its standard error (see the module docstring)."""
    names = sorted({*parties, *(p for values in per_round.values() for p in values)})
    rounds = sorted(per_round)
    x = np.array([[per_round[r].get(p, 0.0) for p in names] for r in rounds]).reshape(len(rounds), len(names))
    sigma = np.array([[round_errors.get(r, {}).get(p, 0.0) for p in names] for r in rounds]).reshape(x.shape)
    totals = x.sum(axis=0)
    variance = (sigma**2).sum(axis=0)
    if len(rounds) >= 2:
        weights = x.sum(axis=1)
        total_weight = weights.sum()
        if abs(total_weight) > 1e-12:
            expected = np.outer(weights, totals / total_weight)
        else:
            expected = np.broadcast_to(totals / len(rounds), x.shape)
        variance = variance + len(rounds) / (len(rounds) - 1) * ((x - expected) ** 2).sum(axis=0)
    return (
        dict(zip(names, totals.tolist(), strict=True)),
        dict(zip(names, np.sqrt(variance).tolist(), strict=True)),
    )


def equal_within_error(a: float, b: float, error_a: float, error_b: float) -> bool:
    """Whether two totals' intervals of two standard errors overlap."""
    return abs(a - b) <= 2 * (error_a + error_b)


def ranks_within_error(totals: Mapping[str, float], errors: Mapping[str, float]) -> dict[str, int]:
    """Rank 1 for the highest total; a party equal within error to the first of its rank shares that rank."""
    ordered = sorted(totals, key=lambda p: (-totals[p], p))
    ranks: dict[str, int] = {}
    head: str | None = None
    for position, party in enumerate(ordered, start=1):
        if head is None or not equal_within_error(
            totals[head], totals[party], errors.get(head, 0.0), errors.get(party, 0.0)
        ):
            head = party
            ranks[party] = position
        else:
            ranks[party] = ranks[head]
    return ranks


class RoundGame(NamedTuple):
    """One round's inputs to valuation: its number, the parties' updates and the round's starting model."""

    round: int
    updates: Sequence[ClientUpdate]
    start: Params


class RunValuation(BaseModel):
    """Every valued round's values and Monte Carlo errors, the totals with their standard errors, the cost."""

    method: str
    per_round: dict[int, dict[str, float]]
    round_errors: dict[int, dict[str, float]]
    gains: dict[int, float]
    valued: list[int]
    skipped: list[int]
    totals: dict[str, float]
    errors: dict[str, float]
    evaluations: int


def value_run(
    method: str,
    games: Iterable[RoundGame],
    evaluate: Evaluate,
    options: Mapping[str, Any] | None,
    parties: Iterable[str],
    min_round_gain: float,
) -> RunValuation:
    """Value a run: v(empty) and v(N) of every round first (two evaluations each), then only the rounds that
    moved the global model enough (``valued_rounds``), then totals and errors (``run_totals``)."""
    kept = {}
    gains: dict[int, float] = {}
    evaluations = 0
    for game in games:
        if not game.updates:
            continue
        aggregate = weighted_mean([u.params for u in game.updates], [float(u.num_examples) for u in game.updates])
        empty, full = float(evaluate(dict(game.start))), float(evaluate(aggregate))
        evaluations += 2
        kept[game.round] = (game, empty, full)
        gains[game.round] = full - empty
    valued = valued_rounds(gains, min_round_gain)
    typed = valuation_options(method, options)
    per_round: dict[int, dict[str, float]] = {}
    round_errors: dict[int, dict[str, float]] = {}
    for number in valued:
        game, empty, full = kept[number]
        if "seed" in type(typed).model_fields:  # fresh permutations each round, so their errors average out
            round_options = {**(options or {}), "seed": typed.model_dump()["seed"] * 1_000_003 + number}
        else:
            round_options = options
        result = value_round(
            method, game.updates, game.start, evaluate, round_options, start_utility=empty, full_utility=full
        )
        per_round[number], round_errors[number] = dict(result.values), dict(result.errors)
        evaluations += result.evaluations
    totals, errors = run_totals(per_round, round_errors, parties)
    return RunValuation(
        method=method,
        per_round=per_round,
        round_errors=round_errors,
        gains=gains,
        valued=valued,
        skipped=sorted(set(gains) - set(valued)),
        totals=totals,
        errors=errors,
        evaluations=evaluations,
    )
