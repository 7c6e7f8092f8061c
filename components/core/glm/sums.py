"""What one party computes on its own rows at given coefficients: additive sums, never a row.

At coefficients ``beta`` with ``eta = X beta`` and ``mu = g^-1(eta)`` the party returns

- ``count``: its rows;
- ``score``: ``X'(y - mu)``, the gradient of the log-likelihood (times the dispersion for gaussian);
- ``information``: ``X' diag(V(mu)) X``, the negative Hessian (for gaussian ``X'X``);
- ``deviance``: the sum of unit deviances (for gaussian the residual sum of squares);
- ``loglik_constant``: the part of the log-likelihood that depends on ``y`` only (for the AIC).

Every field is a sum over rows, so the sums over parties are the sums over the pooled rows; for secure
aggregation they travel as one flat vector (``to_vector`` / ``from_vector``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.core.glm.family import Family


@dataclass(frozen=True)
class GlmSums:
    count: int
    score: np.ndarray  # (p,)
    information: np.ndarray  # (p, p)
    deviance: float
    loglik_constant: float

    @property
    def n_parameters(self) -> int:
        return len(self.score)

    def __add__(self, other: GlmSums) -> GlmSums:
        return GlmSums(
            self.count + other.count,
            self.score + other.score,
            self.information + other.information,
            self.deviance + other.deviance,
            self.loglik_constant + other.loglik_constant,
        )

    def to_vector(self) -> np.ndarray:
        """``[score, upper triangle of information, deviance, loglik_constant, count]`` as float64."""
        upper = self.information[np.triu_indices(self.n_parameters)]
        return np.concatenate([self.score, upper, [self.deviance, self.loglik_constant, float(self.count)]])

    @staticmethod
    def vector_length(n_parameters: int) -> int:
        return n_parameters + n_parameters * (n_parameters + 1) // 2 + 3

    @classmethod
    def from_vector(cls, vector: np.ndarray, n_parameters: int) -> GlmSums:
        p = n_parameters
        if vector.shape != (cls.vector_length(p),):
            raise ValueError(f"a sums vector for {p} parameters has {cls.vector_length(p)} values, not {vector.shape}")
        upper = np.triu_indices(p)
        information = np.zeros((p, p))
        information[upper] = vector[p : p + len(upper[0])]
        information = information + np.triu(information, 1).T
        deviance, constant, count = vector[-3:]
        return cls(int(round(count)), vector[:p].copy(), information, float(deviance), float(constant))

    @classmethod
    def total(cls, parts: list[GlmSums]) -> GlmSums:
        if not parts:
            raise ValueError("no sums to add")
        result = parts[0]
        for part in parts[1:]:
            result = result + part
        return result


def design_matrix(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """An intercept column, then ``(features - mean) / scale`` (the pooled mean and scale, the same at every party)."""
    x = (np.asarray(features, dtype=np.float64) - mean) / scale
    return np.column_stack([np.ones(len(x)), x])


def local_sums(design: np.ndarray, y: np.ndarray, beta: np.ndarray, fam: Family) -> GlmSums:
    """The sums of one party's rows at ``beta`` (see the module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    eta = design @ beta
    mu = fam.mean(eta)
    weights = fam.variance(mu)
    return GlmSums(
        count=len(y),
        score=design.T @ (y - mu),
        information=(design * weights[:, None]).T @ design,
        deviance=fam.deviance(y, mu),
        loglik_constant=fam.loglik_constant(y),
    )
