"""A cooperative game: the utility v(S) of every coalition S of players, cached and counted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

Coalition = frozenset[str]


class Estimate(NamedTuple):
    """A Monte Carlo estimate of each player's value and its standard error across the sampled permutations."""

    values: dict[str, float]
    errors: dict[str, float]


class CoalitionUtility:
    """v(S) for coalitions of ``players``, each computed at most once.

    ``evaluations`` counts the distinct coalitions actually computed (cache hits are free).
    ``evaluate_many`` computes the missing coalitions of a batch on ``workers`` threads, so
    ``value_of`` must be thread-safe when ``workers > 1``.
    """

    def __init__(
        self,
        players: Iterable[str],
        value_of: Callable[[Coalition], float],
        workers: int = 1,
        known: Mapping[Coalition, float] | None = None,
    ) -> None:
        self.players: tuple[str, ...] = tuple(sorted(players))
        if len(set(self.players)) != len(self.players):
            raise ValueError("player names must be unique")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._value_of = value_of
        self._workers = workers
        self._cache: dict[Coalition, float] = {frozenset(c): float(v) for c, v in (known or {}).items()}
        self.evaluations = 0

    def evaluate_many(self, coalitions: Sequence[Iterable[str]]) -> list[float]:
        """v(S) for each coalition, computing the uncached ones as one batch."""
        keys = [self._checked(c) for c in coalitions]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if self._workers > 1 and len(missing) > 1:
            with ThreadPoolExecutor(max_workers=min(self._workers, len(missing))) as pool:
                values = list(pool.map(self._value_of, missing))
        else:
            values = [self._value_of(k) for k in missing]
        for key, value in zip(missing, values, strict=True):
            self._cache[key] = float(value)
        self.evaluations += len(missing)
        return [self._cache[k] for k in keys]

    @property
    def grand(self) -> Coalition:
        return frozenset(self.players)

    def _checked(self, coalition: Iterable[str]) -> Coalition:
        key = frozenset(coalition)
        unknown = key.difference(self.players)
        if unknown:
            raise ValueError(f"unknown players {sorted(unknown)}")
        return key


def share_within_groups(values: Mapping[str, float], groups: Iterable[Sequence[str]]) -> dict[str, float]:
    """Give every player of a group of interchangeable players the group's mean value.

    Interchangeable (symmetric) players have equal Shapley values; a Monte Carlo estimate that
    split them unevenly is only sampling noise, so averaging removes noise and bias toward either.
    """
    shared = dict(values)
    for group in groups:
        mean = sum(values[p] for p in group) / len(group)
        shared.update(dict.fromkeys(group, mean))
    return shared
