"""Norm clipping as a wrapper: bound each party's influence, then let any strategy aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from components.core.kernels import clip_delta
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Strategy, Wrapping


class NormClipping(Wrapping):
    """Scale each update's delta from ``current`` to L2 norm at most ``max_norm``, then delegate to ``inner``."""

    name = "clipping"

    def __init__(self, inner: Strategy, max_norm: float) -> None:
        if max_norm <= 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}")
        self.inner = inner
        self.max_norm = float(max_norm)

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        clipped = [replace(u, params=clip_delta(u.params, current, self.max_norm)[0]) for u in updates]
        return self.inner.aggregate(round_number, current, clipped)
