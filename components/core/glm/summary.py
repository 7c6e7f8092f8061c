"""A GLM summary from the pooled sums at the final coefficients, as a statistician reads it.

Covariance ``scale * (I + ridge)^-1`` with ``I`` the information at the final coefficients; ``scale`` is 1
for binomial and poisson and the Pearson chi-square over the residual degrees of freedom (``RSS / (n - p)``)
for gaussian, whose statistics are t values (``n - p`` degrees of freedom, as R's ``glm`` reports) where the
others are z values. The AIC follows statsmodels: ``-2 loglik + 2 p``, with gaussian's log-likelihood at the
maximum-likelihood scale ``RSS / n``.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

from components.core.glm.family import Family
from components.core.glm.sums import GlmSums


class Coefficient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    estimate: float
    std_error: float
    statistic: float  # z or t
    p_value: float
    ci_low: float
    ci_high: float


class GlmSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str
    statistic: str  # "z" or "t"
    coefficients: list[Coefficient]
    n_rows: int
    df_residual: int
    scale: float
    deviance: float
    log_likelihood: float
    aic: float
    iterations: int
    converged: bool
    ridge: float = 0.0
    confidence: float = 0.95
    covariance: list[list[float]]

    @property
    def estimates(self) -> np.ndarray:
        return np.array([c.estimate for c in self.coefficients])

    @property
    def std_errors(self) -> np.ndarray:
        return np.array([c.std_error for c in self.coefficients])


def summarise(
    fam: Family,
    names: list[str],
    beta: np.ndarray,
    total: GlmSums,
    iterations: int,
    converged: bool,
    penalty: np.ndarray | None = None,
    confidence: float = 0.95,
) -> GlmSummary:
    """The summary of coefficients ``beta`` from the pooled ``total`` sums computed at ``beta``."""
    p = len(beta)
    n = total.count
    df_residual = n - p
    if df_residual < 1:
        raise ValueError(f"{n} rows cannot fit {p} parameters")
    scale = total.deviance / df_residual if fam.estimates_scale else 1.0
    information = total.information + (penalty if penalty is not None else 0.0)
    covariance = scale * np.linalg.inv(information)
    errors = np.sqrt(np.diag(covariance))
    values = beta / errors
    from scipy import stats  # slow to import: only when a summary is computed

    if fam.estimates_scale:
        distribution = stats.t(df_residual)
        log_likelihood = -n / 2 * (1 + math.log(2 * math.pi * total.deviance / n))
    else:
        distribution = stats.norm()
        log_likelihood = -total.deviance / 2 + total.loglik_constant
    p_values = 2 * distribution.sf(np.abs(values))
    quantile = distribution.ppf(0.5 + confidence / 2)
    coefficients = [
        Coefficient(
            name=name,
            estimate=float(b),
            std_error=float(e),
            statistic=float(v),
            p_value=float(pv),
            ci_low=float(b - quantile * e),
            ci_high=float(b + quantile * e),
        )
        for name, b, e, v, pv in zip(names, beta, errors, values, p_values, strict=True)
    ]
    return GlmSummary(
        family=fam.name,
        statistic="t" if fam.estimates_scale else "z",
        coefficients=coefficients,
        n_rows=n,
        df_residual=df_residual,
        scale=float(scale),
        deviance=float(total.deviance),
        log_likelihood=float(log_likelihood),
        aic=float(-2 * log_likelihood + 2 * p),
        iterations=iterations,
        converged=converged,
        ridge=float(penalty.max()) if penalty is not None and penalty.size else 0.0,
        confidence=confidence,
        covariance=covariance.tolist(),
    )
