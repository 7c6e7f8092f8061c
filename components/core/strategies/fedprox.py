"""FedProx (Li et al. 2020): FedAvg on the server, a proximal term ``mu/2 * ||w - w_global||^2`` in local training."""

from __future__ import annotations

from typing import Any

from components.core.strategies.fedavg import FedAvg


class FedProx(FedAvg):
    name = "fedprox"

    def __init__(self, mu: float = 0.01) -> None:
        if mu < 0:
            raise ValueError(f"mu must be non-negative, got {mu}")
        self.mu = float(mu)

    def training_overrides(self) -> dict[str, Any]:
        return {"proximal_mu": self.mu}
