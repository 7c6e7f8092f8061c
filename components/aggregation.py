"""Aggregation kernels: free functions on parameter arrays, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from components.params import Params


class WeightedMean:
    """Streaming weighted mean: keeps one running float64 sum, not every update."""

    def __init__(self) -> None:
        self._sum: Params | None = None
        self._weight = 0.0

    def add(self, params: Mapping[str, np.ndarray], weight: float) -> None:
        if weight < 0:
            raise ValueError("weights must be non-negative")
        if self._sum is None:
            self._sum = {n: np.asarray(a, dtype=np.float64) * weight for n, a in params.items()}
        else:
            for name, array in params.items():
                self._sum[name] += np.asarray(array, dtype=np.float64) * weight
        self._weight += weight

    @property
    def total_weight(self) -> float:
        return self._weight

    def result(self, dtype: np.dtype | type = np.float32) -> Params:
        if self._sum is None or self._weight <= 0:
            raise ValueError("weighted mean of nothing (no updates or all weights zero)")
        return {name: (s / self._weight).astype(dtype) for name, s in self._sum.items()}


def weighted_mean(
    params_list: Sequence[Mapping[str, np.ndarray]] | Iterable[Mapping[str, np.ndarray]],
    weights: Sequence[float],
) -> Params:
    """Weighted mean of several parameter sets (FedAvg's kernel)."""
    acc = WeightedMean()
    for params, weight in zip(params_list, weights, strict=True):
        acc.add(params, weight)
    return acc.result()
