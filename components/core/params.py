"""Model parameters as an ordered mapping of tensor name to NumPy array."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Params = dict[str, np.ndarray]


def zeros_like(params: Mapping[str, np.ndarray]) -> Params:
    """A float64 accumulator with the same names and shapes as ``params``."""
    return {name: np.zeros(array.shape, dtype=np.float64) for name, array in params.items()}


def flatten(params: Mapping[str, np.ndarray]) -> np.ndarray:
    """All tensors concatenated into one float64 vector, in name order of the mapping."""
    if not params:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in params.values()])


def unflatten(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> Params:
    """Split ``vector`` back into tensors shaped and typed like ``like``."""
    out: Params = {}
    offset = 0
    for name, array in like.items():
        size = array.size
        out[name] = vector[offset : offset + size].reshape(array.shape).astype(array.dtype)
        offset += size
    if offset != vector.size:
        raise ValueError(f"vector has {vector.size} values, parameters need {offset}")
    return out


Layout = Mapping[str, tuple[Sequence[int], str]]  # tensor name -> (shape, dtype): what a valid update looks like
