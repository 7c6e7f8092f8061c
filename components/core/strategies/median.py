"""Coordinate-wise median (Yin et al. 2018): robust to a minority of arbitrary updates."""

from __future__ import annotations

from collections.abc import Sequence

from components.core.kernels import coordinate_median
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Stateless


class CoordinateMedian(Stateless):
    name = "median"

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        return coordinate_median([update.params for update in updates])
