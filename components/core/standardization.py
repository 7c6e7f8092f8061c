"""Input standardisation fitted from federated sums: tensors every model carries but no party trains.

The model's first layer subtracts ``standardize.mean`` and divides by ``standardize.scale``. The
coordinator fits both from each party's per-feature count, sum and sum of squares, so no row leaves a
party; training, clipping, noise and secure masking leave these tensors alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from components.core.params import Params

PREFIX = "standardize."
MEAN = PREFIX + "mean"
SCALE = PREFIX + "scale"


def is_fitted(name: str) -> bool:
    """True for tensors fitted from statistics rather than trained."""
    return name.startswith(PREFIX)


def trained_names(names: Iterable[str]) -> list[str]:
    return [name for name in names if not is_fitted(name)]


def fitted_names(names: Iterable[str]) -> list[str]:
    return [name for name in names if is_fitted(name)]


def fit(params: Params, count: int, total: np.ndarray, total_sq: np.ndarray) -> Params:
    """``params`` with mean and scale fitted from ``count`` rows' per-feature sums (constant features get scale 1)."""
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {**params, MEAN: mean.astype(np.float32), SCALE: np.where(std > 1e-8, std, 1.0).astype(np.float32)}


def fit_rows(params: Params, features: np.ndarray) -> Params:
    """``fit`` from rows held in one place (the centralized baseline and benchmarks)."""
    x = np.asarray(features, dtype=np.float64)
    return fit(params, len(x), x.sum(axis=0), np.square(x).sum(axis=0))
