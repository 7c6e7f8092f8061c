"""Aggregation kernels: free functions on lists of parameter sets, no I/O.

The weighted mean (FedAvg's kernel, cache-blocked; ``RunningMean`` folds updates in as they arrive) and the
robust kernels. Each robust kernel works
coordinate by coordinate (median, trimmed mean) or on whole flattened updates (Krum), and returns tensors
named, shaped and typed like the first input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from components.core.params import Params, flatten, unflatten

CHUNK = 1 << 15  # elements per block: a block of the sum and one of a scaled update stay in L2 cache


def _accumulator_dtype(dtype: np.dtype) -> np.dtype:
    """float32 tensors add up in float32 (in cache; n terms: relative error ~n * 6e-8), wider ones in float64."""
    return np.dtype(np.float32) if np.dtype(dtype).itemsize <= 4 else np.dtype(np.float64)


def _weighted_sum_into(out: np.ndarray, arrays: Sequence[np.ndarray], scales: Sequence[float]) -> None:
    """``out = sum(scale * array)``, one block of coordinates at a time.

    Each block of the sum is built in a small buffer that stays in cache while every update's block is
    scaled into a second buffer and added, then written once: memory sees one read of every update and one
    write of the result, with no whole-update temporary.
    """
    flat_out = out.reshape(-1)
    flats = [np.ravel(array) for array in arrays]
    acc_dtype = _accumulator_dtype(max((a.dtype for a in flats), key=lambda d: d.itemsize))
    total = flat_out.size
    if total == 0:
        return
    block = min(CHUNK, total)
    acc, scaled = np.empty(block, dtype=acc_dtype), np.empty(block, dtype=acc_dtype)
    for start in range(0, total, block):
        stop = min(total, start + block)
        size = stop - start
        a, t = acc[:size], scaled[:size]
        np.multiply(flats[0][start:stop], scales[0], out=a, casting="unsafe")
        for flat, scale in zip(flats[1:], scales[1:], strict=True):
            np.multiply(flat[start:stop], scale, out=t, casting="unsafe")
            np.add(a, t, out=a)
        flat_out[start:stop] = a


class WeightedMean:
    """Weighted mean of parameter sets added one at a time.

    ``add`` keeps a reference to each update (no copy; the rounds hold the updates anyway) and ``result``
    averages them in one cache-blocked pass (``_weighted_sum_into``), so the kernel streams every update
    once instead of reading and writing a whole running sum per update.
    """

    def __init__(self) -> None:
        self._params: list[Mapping[str, np.ndarray]] = []
        self._weights: list[float] = []
        self._weight = 0.0

    def add(self, params: Mapping[str, np.ndarray], weight: float) -> None:
        if weight < 0:
            raise ValueError("weights must be non-negative")
        self._params.append(params)
        self._weights.append(float(weight))
        self._weight += weight

    @property
    def total_weight(self) -> float:
        return self._weight

    def result(self, dtype: np.dtype | type = np.float32) -> Params:
        if not self._params or self._weight <= 0:
            raise ValueError("weighted mean of nothing (no updates or all weights zero)")
        scales = [weight / self._weight for weight in self._weights]
        out: Params = {}
        for name, first in self._params[0].items():
            arrays = [np.asarray(params[name]) for params in self._params]
            out[name] = np.empty(np.shape(first), dtype=dtype)
            _weighted_sum_into(out[name], arrays, scales)
        return out


class RunningMean:
    """Weighted mean of parameter sets folded in as they arrive: it holds one running sum, never the sets.

    ``add`` adds ``weight * params`` into the sum with the same cache-blocked kernel (float32 sums for
    float32 tensors), so memory is one model's worth however many updates come; ``result`` divides by the
    total weight. Equal to ``WeightedMean`` up to float32 rounding.
    """

    def __init__(self) -> None:
        self._sum: Params = {}
        self._weight = 0.0

    def add(self, params: Mapping[str, np.ndarray], weight: float) -> None:
        if weight < 0:
            raise ValueError("weights must be non-negative")
        if not self._sum:
            self._sum = {
                name: np.zeros(np.shape(array), dtype=_accumulator_dtype(np.asarray(array).dtype))
                for name, array in params.items()
            }
        for name, total in self._sum.items():
            _weighted_sum_into(total, [total, np.asarray(params[name])], [1.0, float(weight)])
        self._weight += weight

    @property
    def total_weight(self) -> float:
        return self._weight

    def result(self, dtype: np.dtype | type = np.float32) -> Params:
        if not self._sum or self._weight <= 0:
            raise ValueError("weighted mean of nothing (no updates or all weights zero)")
        return {name: (total / self._weight).astype(dtype, copy=False) for name, total in self._sum.items()}


def weighted_mean(
    params_list: Sequence[Mapping[str, np.ndarray]] | Iterable[Mapping[str, np.ndarray]],
    weights: Sequence[float],
) -> Params:
    """Weighted mean of several parameter sets (FedAvg's kernel)."""
    acc = WeightedMean()
    for params, weight in zip(params_list, weights, strict=True):
        acc.add(params, weight)
    return acc.result()


def _stacked(params_list: Sequence[Mapping[str, np.ndarray]], name: str) -> np.ndarray:
    return np.stack([np.asarray(params[name], dtype=np.float64) for params in params_list])


def _require_some(params_list: Sequence[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
    if not params_list:
        raise ValueError("cannot aggregate an empty list of updates")
    return params_list[0]


def coordinate_median(params_list: Sequence[Mapping[str, np.ndarray]]) -> Params:
    """Per-coordinate median (Yin et al. 2018); with an even count, the mean of the two middle values."""
    first = _require_some(params_list)
    return {
        name: np.median(_stacked(params_list, name), axis=0).astype(first[name].dtype, copy=False) for name in first
    }


def trimmed_mean(params_list: Sequence[Mapping[str, np.ndarray]], beta: float) -> Params:
    """Per-coordinate mean after dropping the ``floor(beta * n)`` largest and smallest values (Yin et al. 2018)."""
    first = _require_some(params_list)
    if not 0 <= beta < 0.5:
        raise ValueError(f"beta must be in [0, 0.5), got {beta}")
    count = len(params_list)
    trimmed = int(np.floor(beta * count))
    out: Params = {}
    for name in first:
        ordered = np.sort(_stacked(params_list, name), axis=0)
        out[name] = ordered[trimmed : count - trimmed].mean(axis=0).astype(first[name].dtype, copy=False)
    return out


def krum_scores(params_list: Sequence[Mapping[str, np.ndarray]], f: int) -> np.ndarray:
    """Krum score of each update (Blanchard et al. 2017): the sum of squared distances to its
    ``n - f - 2`` nearest other updates. Lower is more central. Needs ``n > 2f + 2``."""
    _require_some(params_list)
    count = len(params_list)
    if f < 0 or count <= 2 * f + 2:
        raise ValueError(f"Krum needs more than 2f + 2 = {2 * f + 2} updates, got {count}")
    vectors = np.stack([flatten(params) for params in params_list])
    squared_norms = np.sum(vectors**2, axis=1)
    distances = np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * vectors @ vectors.T, 0.0)
    neighbours = count - f - 2
    scores = np.empty(count)
    for i in range(count):
        others = np.delete(distances[i], i)
        scores[i] = np.sum(np.partition(others, neighbours - 1)[:neighbours])
    return scores


def multi_krum_selection(params_list: Sequence[Mapping[str, np.ndarray]], f: int, m: int) -> list[int]:
    """Indices of the ``m`` updates with the lowest Krum scores (ties broken by index)."""
    if not 1 <= m <= len(params_list):
        raise ValueError(f"m must be between 1 and the number of updates ({len(params_list)}), got {m}")
    scores = krum_scores(params_list, f)
    return sorted(np.argsort(scores, kind="stable")[:m].tolist())


def multi_krum(
    params_list: Sequence[Mapping[str, np.ndarray]], f: int, m: int, weights: Sequence[float] | None = None
) -> Params:
    """Multi-Krum: the (weighted) mean of the ``m`` most central updates; ``m = 1`` is plain Krum."""
    selected = multi_krum_selection(params_list, f, m)
    acc = WeightedMean()
    for index in selected:
        acc.add(params_list[index], 1.0 if weights is None else float(weights[index]))
    dtypes = {name: array.dtype for name, array in params_list[0].items()}
    return {name: array.astype(dtypes[name], copy=False) for name, array in acc.result(np.float64).items()}


def nearest_neighbour_mixing(params_list: Sequence[Mapping[str, np.ndarray]], f: int) -> list[Params]:
    """Nearest-neighbour mixing (Allouah et al. 2023): replace each update by the plain mean of its
    ``n - f`` nearest updates (itself included, Euclidean distance over all tensors).

    Honest updates that sit far from each other (non-IID parties) are pulled toward their common mean,
    while ``f`` bad ones can move each mixed honest update by at most ``f / (n - f)`` of their own
    reach; a robust rule applied afterwards then sees a tighter honest cluster. Needs ``n > 2f``.
    """
    first = _require_some(params_list)
    count = len(params_list)
    if f < 0 or count <= 2 * f:
        raise ValueError(f"nearest-neighbour mixing needs more than 2f = {2 * f} updates, got {count}")
    vectors = np.stack([flatten(params) for params in params_list]).astype(np.float64, copy=False)
    squared_norms = np.sum(vectors**2, axis=1)
    distances = np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * vectors @ vectors.T, 0.0)
    np.fill_diagonal(distances, -1.0)  # each update is its own nearest neighbour, whatever the rounding
    nearest = np.argsort(distances, axis=1, kind="stable")[:, : count - f]
    return [unflatten(vectors[rows].mean(axis=0), first) for rows in nearest]


def clip_delta(
    params: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], max_norm: float
) -> tuple[Params, float]:
    """Scale ``params - reference`` down to L2 norm ``max_norm`` (over all tensors) if it is longer.

    Returns the clipped parameters ``reference + delta * min(1, max_norm / ||delta||)``, typed like
    ``reference``, and the delta's norm before clipping.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    delta = {name: np.asarray(params[name], dtype=np.float64) - reference[name] for name in reference}
    norm = float(np.sqrt(sum(float(np.sum(d**2)) for d in delta.values())))
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    clipped = {name: (reference[name] + d * scale).astype(reference[name].dtype) for name, d in delta.items()}
    return clipped, norm
