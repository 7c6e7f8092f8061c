"""Bucketing (Karimireddy, He, Jaggi 2022) as a wrapper: average random small groups, then aggregate robustly.

Each round the updates are shuffled and cut into buckets of ``bucket_size`` (the last one smaller when
the count does not divide); the wrapped strategy sees one example-weighted mean per bucket. Averaging
shrinks the spread that non-IID parties put between honest updates, which is what throws coordinate-wise
rules (median, trimmed mean) off; the price is that ``f`` bad parties can spoil up to ``f`` buckets,
a larger share of fewer inputs, so the inner rule must tolerate a fraction ``bucket_size * f / n``.

The shuffle is drawn from a generator seeded by ``(seed, round_number)``, so a fixed ``seed`` makes
rounds reproducible and a resumed run draws the same buckets; ``None`` draws fresh entropy. An attacker
who knows the seed can choose its bucket mates, so leave it ``None`` in production.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.core.kernels import WeightedMean
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Strategy, Wrapping


def bucket_mean(updates: Sequence[ClientUpdate]) -> ClientUpdate:
    """The example-weighted mean of ``updates`` as one update, named ``a+b``, carrying their total example count."""
    acc = WeightedMean()
    for update in updates:
        acc.add(update.params, float(update.num_examples))
    dtypes = {tensor: array.dtype for tensor, array in updates[0].params.items()}
    params = {tensor: array.astype(dtypes[tensor], copy=False) for tensor, array in acc.result(np.float64).items()}
    return ClientUpdate(
        party="+".join(update.party for update in updates),
        params=params,
        num_examples=sum(update.num_examples for update in updates),
    )


class Bucketing(Wrapping):
    """Feed ``inner`` the means of random buckets of ``bucket_size`` updates instead of the updates themselves."""

    name = "bucketing"

    def __init__(self, inner: Strategy, bucket_size: int = 2, seed: int | None = None) -> None:
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be at least 1, got {bucket_size}")
        self.inner = inner
        self.bucket_size = int(bucket_size)
        self.seed = seed

    def buckets(self, round_number: int, count: int) -> list[list[int]]:
        """Indices of the updates that share each bucket in ``round_number``: consecutive slices of a permutation."""
        rng = np.random.default_rng(None if self.seed is None else [self.seed, round_number])
        order = rng.permutation(count).tolist()
        return [sorted(order[start : start + self.bucket_size]) for start in range(0, count, self.bucket_size)]

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        if not updates:
            raise ValueError("cannot aggregate an empty list of updates")
        means = [bucket_mean([updates[i] for i in members]) for members in self.buckets(round_number, len(updates))]
        return self.inner.aggregate(round_number, current, means)
