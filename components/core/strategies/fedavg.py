"""FedAvg (McMahan et al. 2017): the example-weighted mean of the parties' weights."""

from __future__ import annotations

from collections.abc import Sequence

from components.core.kernels import RunningMean, WeightedMean
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, Stateless


class FedAvg(Stateless):
    name = "fedavg"

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        acc = WeightedMean()
        for update in updates:
            acc.add(update.params, float(update.num_examples))
        return acc.result()

    def running(self) -> RunningMean:
        """The example-weighted mean, folded update by update (``components.core.strategies.base.Streaming``)."""
        return RunningMean()
