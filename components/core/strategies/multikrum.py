"""Multi-Krum (Blanchard et al. 2017): average the ``m`` most central updates, tolerating ``f`` bad ones."""

from __future__ import annotations

from collections.abc import Sequence

from components.core.kernels import multi_krum
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Stateless


class MultiKrum(Stateless):
    """``m=None`` keeps ``n - f`` updates each round; the kept updates are weighted by their example counts."""

    name = "multikrum"

    def __init__(self, f: int = 1, m: int | None = None) -> None:
        if f < 0:
            raise ValueError(f"f must be non-negative, got {f}")
        if m is not None and m < 1:
            raise ValueError(f"m must be at least 1, got {m}")
        self.f = int(f)
        self.m = m

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        keep = len(updates) - self.f if self.m is None else min(self.m, len(updates))
        return multi_krum(
            [update.params for update in updates],
            self.f,
            keep,
            weights=[float(update.num_examples) for update in updates],
        )
