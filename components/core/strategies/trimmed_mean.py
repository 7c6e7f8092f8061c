"""Coordinate-wise trimmed mean (Yin et al. 2018): drop the ``beta`` largest and smallest values, average the rest."""

from __future__ import annotations

from collections.abc import Sequence

from components.core.kernels import trimmed_mean
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Stateless


class TrimmedMean(Stateless):
    name = "trimmed_mean"

    def __init__(self, beta: float = 0.2) -> None:
        if not 0 <= beta < 0.5:
            raise ValueError(f"beta must be in [0, 0.5), got {beta}")
        self.beta = float(beta)

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        return trimmed_mean([update.params for update in updates], self.beta)
