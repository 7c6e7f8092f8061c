"""The three GLM families with their canonical links: gaussian (identity), binomial (logit), poisson (log).

With a canonical link the Newton step and Fisher scoring agree: the score is ``X'(y - mu)`` and the
information ``X' diag(V(mu)) X`` (for gaussian, both divided by the dispersion, which cancels in the step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

FamilyName = Literal["gaussian", "binomial", "poisson"]
FAMILIES: tuple[FamilyName, ...] = ("gaussian", "binomial", "poisson")


@dataclass(frozen=True)
class Family:
    """One family: its inverse link, variance function, unit deviance and log-likelihood constant."""

    name: FamilyName

    @property
    def estimates_scale(self) -> bool:
        """True when the dispersion is estimated (gaussian): t statistics, scale = Pearson chi2 / df."""
        return self.name == "gaussian"

    def mean(self, eta: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            from scipy.special import expit  # scipy loads when a GLM is fitted, not when a CLI starts

            return expit(eta)
        if self.name == "poisson":
            return np.exp(eta)
        return eta

    def variance(self, mu: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            return mu * (1.0 - mu)
        if self.name == "poisson":
            return mu
        return np.ones_like(mu)

    def deviance(self, y: np.ndarray, mu: np.ndarray) -> float:
        """Sum of unit deviances (additive over rows, so over parties)."""
        from scipy.special import xlogy

        if self.name == "binomial":
            return float(2.0 * np.sum(xlogy(y, y / mu) + xlogy(1.0 - y, (1.0 - y) / (1.0 - mu))))
        if self.name == "poisson":
            return float(2.0 * np.sum(xlogy(y, y / mu) - (y - mu)))
        return float(np.sum(np.square(y - mu)))

    def loglik_constant(self, y: np.ndarray) -> float:
        """``loglik + deviance / 2``, which depends on ``y`` alone (additive; binomial 0/1 and gaussian: 0).

        For poisson ``sum(y log y - y - log y!)``; gaussian's log-likelihood needs the scale and is computed
        from the deviance and the row count in ``summary``."""
        if self.name == "poisson":
            from scipy.special import gammaln, xlogy

            return float(np.sum(xlogy(y, y) - y - gammaln(y + 1.0)))
        return 0.0

    def check_response(self, y: np.ndarray) -> str | None:
        """Why ``y`` cannot be this family's response, or None."""
        if not np.all(np.isfinite(y)):
            return "the response has missing or infinite values"
        if self.name == "binomial" and not np.all((y == 0) | (y == 1)):
            return "a binomial response must be 0 or 1"
        if self.name == "poisson" and (np.any(y < 0) or not np.all(y == np.floor(y))):
            return "a poisson response must be a non-negative count"
        return None


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown GLM family {name!r}; choose one of [{', '.join(FAMILIES)}]")
    return Family(name)  # type: ignore[arg-type]
