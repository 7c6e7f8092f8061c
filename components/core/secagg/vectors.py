"""A party's secure-aggregation input vector and the weighted mean decoded from the unmasked sum.

Each party's vector is ``[n * w for every trained tensor] + [n]`` (n = its rows), so the unmasked
sum gives the example-weighted mean that FedAvg needs. Fitted input statistics (``standardize.*``)
are not trained and stay as the coordinator sent them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from components.core.errors import QuorumNotReached
from components.core.params import Layout, Params
from components.core.standardization import trained_names


def secure_names(layout: Layout) -> list[str]:
    """Tensors that travel inside the masked vector: the trained ones."""
    return trained_names(layout)


def vector_length(layout: Layout) -> int:
    return sum(math.prod(layout[name][0]) for name in secure_names(layout)) + 1


def encode_update(params: Mapping[str, np.ndarray], layout: Layout, num_examples: int) -> np.ndarray:
    """A party's input vector: its example-weighted weights, then its example count."""
    parts = [np.asarray(params[name], dtype=np.float64).ravel() * num_examples for name in secure_names(layout)]
    return np.concatenate([*parts, [float(num_examples)]])


def decode_mean(total: np.ndarray, current: Mapping[str, np.ndarray], layout: Layout) -> tuple[Params, int]:
    """The weighted mean from the unmasked sum; untrained tensors are copied from ``current``."""
    examples = total[-1]
    if examples < 1:
        raise QuorumNotReached("the secure sum holds no examples")
    mean: Params = {name: np.asarray(array).copy() for name, array in current.items()}
    offset = 0
    for name in secure_names(layout):
        shape, dtype = layout[name]
        size = math.prod(shape)
        mean[name] = (total[offset : offset + size] / examples).reshape(shape).astype(dtype)
        offset += size
    return mean, int(round(examples))
