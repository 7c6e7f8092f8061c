"""Adaptive server optimisers of Reddi et al. 2021 ("Adaptive Federated Optimization", Algorithm 2).

Each round the example-weighted mean of the parties' deltas ``Δ`` is treated as a pseudo-gradient:

    m ← β1·m + (1 − β1)·Δ
    v ← v + Δ²                                  (FedAdagrad)
    v ← v − (1 − β2)·Δ²·sign(v − Δ²)            (FedYogi)
    v ← β2·v + (1 − β2)·Δ²                      (FedAdam)
    x ← x + η·m / (√v + τ)

with ``m`` starting at 0 and ``v`` at ``τ²``, and no bias correction, as in the paper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from components.core.kernels import WeightedMean
from components.core.params import Params
from components.core.strategies.base import ClientUpdate, PrivacyAccount


class _FedOpt(ABC):
    name: str

    def __init__(
        self,
        server_learning_rate: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
    ) -> None:
        if server_learning_rate <= 0 or tau <= 0:
            raise ValueError("server_learning_rate and tau must be positive")
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        self.server_learning_rate = float(server_learning_rate)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.tau = float(tau)
        self._m: Params = {}
        self._v: Params = {}

    @abstractmethod
    def _second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The new second-moment estimate from the old one and this round's delta."""

    def aggregate(self, round_number: int, current: Params, updates: Sequence[ClientUpdate]) -> Params:
        acc = WeightedMean()
        for update in updates:
            acc.add(update.params, float(update.num_examples))
        mean = acc.result(np.float64)
        new: Params = {}
        for name, weights in current.items():
            delta = mean[name] - np.asarray(weights, dtype=np.float64)
            m = self._m.get(name, np.zeros_like(delta))
            v = self._v.get(name, np.full_like(delta, self.tau**2))
            self._m[name] = self.beta1 * m + (1 - self.beta1) * delta
            self._v[name] = self._second_moment(v, delta)
            step = self.server_learning_rate * self._m[name] / (np.sqrt(self._v[name]) + self.tau)
            new[name] = (weights + step).astype(weights.dtype)
        return new

    def training_overrides(self) -> dict[str, Any]:
        return {}

    def state(self) -> Params:
        return {**{f"m.{n}": a for n, a in self._m.items()}, **{f"v.{n}": a for n, a in self._v.items()}}

    def load_state(self, state: Params) -> None:
        self._m = {name[2:]: np.asarray(a, dtype=np.float64) for name, a in state.items() if name.startswith("m.")}
        self._v = {name[2:]: np.asarray(a, dtype=np.float64) for name, a in state.items() if name.startswith("v.")}

    def privacy(self) -> PrivacyAccount | None:
        return None


class FedAdagrad(_FedOpt):
    name = "fedadagrad"

    def _second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return v + delta**2


class FedYogi(_FedOpt):
    name = "fedyogi"

    def _second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        squared = delta**2
        return v - (1 - self.beta2) * squared * np.sign(v - squared)


class FedAdam(_FedOpt):
    name = "fedadam"

    def _second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * delta**2
