"""The coordinator's side of a federated GLM fit: Newton-Raphson (IRLS) on summed party sums.

Each iteration the parties return their sums at the current coefficients; the coordinator adds them and
either stops (converged) or takes one Newton step ``beta += (I + ridge)^-1 (score - ridge beta)``. The
stopping rule is DataSHIELD's (R's ``glm.control``): ``|dev - dev_old| / (|dev| + 0.1) < 1e-8``, within 20
iterations. The first iteration starts at zero coefficients. Gaussian needs one round: at zero coefficients the
sums are ``X'y``, ``X'X`` and ``y'y`` (the deviance), so the coordinator solves the normal equations and computes
the residual sum of squares ``y'y - 2 b'X'y + b'X'X b`` and the sums at ``b`` itself. Poisson's first round only
reads the pooled mean of ``y`` (``score[0] + n`` at zero) and starts Newton at ``[log(mean), 0, ...]``: from zero,
a log link's first step overshoots. A step whose deviance is not finite is halved back toward the previous
coefficients (as R's ``glm.fit``). ``ridge`` adds
``ridge * ||beta||^2 / 2`` (the intercept is not penalised) to minus the log-likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from components.core.errors import ConfigError
from components.core.glm.family import Family
from components.core.glm.sums import GlmSums

TOLERANCE = 1e-8
MAX_ITERATIONS = 20


@dataclass(frozen=True)
class Step:
    """What one iteration decided: stop (``converged`` or out of iterations) or ask again at ``beta``."""

    iteration: int
    deviance: float
    beta: np.ndarray  # the next coefficients to ask for, or the final ones when done
    done: bool
    converged: bool
    total: GlmSums | None = None  # when done: the pooled sums at the final coefficients


@dataclass
class NewtonFit:
    family: Family
    n_parameters: int
    ridge: float = 0.0
    tolerance: float = TOLERANCE
    max_iterations: int = MAX_ITERATIONS
    beta: np.ndarray = field(init=False)
    previous: np.ndarray | None = field(default=None, init=False)  # the coefficients before the last step
    iteration: int = field(default=0, init=False)
    deviances: list[float] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.beta = np.zeros(self.n_parameters)

    def penalty(self) -> np.ndarray:
        """The ridge matrix: ``ridge`` on the diagonal, except for the intercept (first coefficient)."""
        diagonal = np.full(self.n_parameters, float(self.ridge))
        diagonal[0] = 0.0
        return np.diag(diagonal)

    def step(self, total: GlmSums) -> Step:
        """Take the pooled sums at ``self.beta``; return the next coefficients or the final ones."""
        if total.n_parameters != self.n_parameters:
            raise ValueError(f"sums for {total.n_parameters} parameters, the model has {self.n_parameters}")
        self.iteration += 1
        deviance = total.deviance
        if not math.isfinite(deviance) and self.previous is not None and self.iteration < self.max_iterations:
            self.beta = (self.previous + self.beta) / 2  # the step overshot: halve it, as R's glm.fit does
            return Step(self.iteration, deviance, self.beta.copy(), done=False, converged=False)
        previous = self.deviances[-1] if self.deviances else None
        self.deviances.append(deviance)
        if previous is not None and abs(deviance - previous) / (abs(deviance) + 0.1) < self.tolerance:
            return Step(self.iteration, deviance, self.beta.copy(), done=True, converged=True, total=total)
        if self.iteration >= self.max_iterations:
            return Step(self.iteration, deviance, self.beta.copy(), done=True, converged=False, total=total)
        self.previous = self.beta.copy()
        if self.family.name == "poisson" and self.iteration == 1:  # from 0, a log link's Newton step overshoots
            mean = (total.score[0] + total.count) / total.count  # at beta = 0, mu = 1: score[0] = sum(y) - n
            self.beta = np.zeros(self.n_parameters)
            self.beta[0] = math.log(max(mean, 1e-10))
            return Step(self.iteration, deviance, self.beta.copy(), done=False, converged=False)
        penalty = self.penalty()
        try:
            self.beta = self.beta + np.linalg.solve(total.information + penalty, total.score - penalty @ self.beta)
        except np.linalg.LinAlgError:
            raise ConfigError(
                "the GLM's information matrix is singular: some features are constant or collinear in the pooled "
                "rows; drop them from the contract or set model.ridge"
            ) from None
        if self.family.name == "gaussian" and self.iteration == 1:
            return self._least_squares(total)
        return Step(self.iteration, deviance, self.beta.copy(), done=False, converged=False)

    def _least_squares(self, at_zero: GlmSums) -> Step:
        """Gaussian: the sums at the solved coefficients, from the sums at zero (no second round)."""
        b, xtx, xty = self.beta, at_zero.information, at_zero.score
        rss = at_zero.deviance - 2 * b @ xty + b @ xtx @ b
        total = GlmSums(at_zero.count, xty - xtx @ b, xtx, float(rss), at_zero.loglik_constant)
        self.deviances.append(float(rss))
        return Step(self.iteration, float(rss), b.copy(), done=True, converged=True, total=total)


def fit(ask: Callable[[np.ndarray], GlmSums], newton: NewtonFit) -> Step:
    """Iterate until done: ``ask(beta)`` returns the pooled sums at ``beta`` (however they were gathered).

    Returns the last step, which holds the pooled sums at its (final) coefficients for ``summarise``."""
    while True:
        step = newton.step(ask(newton.beta.copy()))
        if step.done:
            return step
