"""Federated GLMs equal statsmodels' GLM on the pooled rows; disclosure rules are checked at the party."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer, load_diabetes

from components.core.config import ModelConfig
from components.core.errors import ConfigError, DisclosureRefused, ProtocolError
from components.core.glm.disclosure import DisclosureRules, check_disclosure
from components.core.glm.family import family
from components.core.glm.newton import NewtonFit, fit
from components.core.glm.secure import GLM_CODEC, secure_total, secure_vector
from components.core.glm.summary import summarise
from components.core.glm.sums import GlmSums, design_matrix, local_sums
from tests.test_secagg import run_round

PARTIES = 10


def uneven_sizes(n: int, parties: int, minimum: int) -> list[int]:
    """``parties`` sizes summing to ``n``: each at least ``minimum``, the rest split 1:4:16:... (very uneven)."""
    weights = 4.0 ** np.arange(parties)
    extra = np.floor((n - minimum * parties) * weights / weights.sum()).astype(int)
    sizes = minimum + extra
    sizes[-1] += n - sizes.sum()
    return sizes.tolist()


def split(x: np.ndarray, y: np.ndarray, minimum: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(len(y))
    bounds = np.cumsum([0, *uneven_sizes(len(y), PARTIES, minimum)])
    return [(x[order[a:b]], y[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def pooled_scaling(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation from the parties' count, sum and sum of squares (as the run fits them)."""
    count = sum(len(px) for px, _ in parts)
    total = sum(px.sum(axis=0) for px, _ in parts)
    total_sq = sum(np.square(px).sum(axis=0) for px, _ in parts)
    mean = total / count
    return mean, np.sqrt(total_sq / count - mean**2)


def plain_total(designs: list[np.ndarray], ys: list[np.ndarray], fam_name: str):
    fam = family(fam_name)
    return lambda beta: GlmSums.total([local_sums(d, y, beta, fam) for d, y in zip(designs, ys, strict=True)])


def secure_sums(designs: list[np.ndarray], ys: list[np.ndarray], fam_name: str):
    """The pooled sums through a real secure-aggregation round: the server sees masked vectors only."""
    fam = family(fam_name)
    p = designs[0].shape[1]

    def ask(beta: np.ndarray) -> GlmSums:
        inputs = {
            f"p{i}": secure_vector(local_sums(d, y, beta, fam))
            for i, (d, y) in enumerate(zip(designs, ys, strict=False))
        }
        unmasked, survivors, _ = run_round(inputs, threshold=7, codec=GLM_CODEC)
        assert len(survivors) == len(designs)
        return secure_total(unmasked, p)

    return ask


def federated_and_pooled(x, y, fam_name: str, minimum: int, secure: bool):
    parts = split(x, y, minimum)
    mean, scale = pooled_scaling(parts)
    designs = [design_matrix(px, mean, scale) for px, _ in parts]
    ys = [py.astype(np.float64) for _, py in parts]
    p = designs[0].shape[1]
    for party_y in ys:  # the default rules hold at every party
        check_disclosure(DisclosureRules(), len(party_y), PARTIES, p)
    ask = (secure_sums if secure else plain_total)(designs, ys, fam_name)
    fam = family(fam_name)
    newton = NewtonFit(fam, p)
    step = fit(ask, newton)
    names = ["intercept", *(f"x{i}" for i in range(p - 1))]
    summary = summarise(fam, names, step.beta, step.total, step.iteration, step.converged)
    sm_family = {
        "gaussian": sm.families.Gaussian(),
        "binomial": sm.families.Binomial(),
        "poisson": sm.families.Poisson(),
    }
    pooled = sm.GLM(np.concatenate(ys), np.vstack(designs), family=sm_family[fam_name]).fit(tol=1e-12)
    return summary, pooled, parts


def poisson_data(n: int = 4000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.0, 5.0, -1.0]
    rate = np.exp(0.3 + 0.4 * x[:, 0] - 0.1 * x[:, 1] + 0.8 * x[:, 2])
    return x, rng.poisson(rate).astype(np.float64)


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """The ten ``mean_*`` features: all 30 separate the classes perfectly (the MLE does not exist)."""
    x, y = load_breast_cancer(return_X_y=True)
    return x[:, :10], y.astype(np.float64)


DATASETS = {
    "binomial": breast_cancer,
    "gaussian": lambda: load_diabetes(return_X_y=True),
    "poisson": poisson_data,
}


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
@pytest.mark.parametrize("fam_name", ["binomial", "gaussian", "poisson"])
def test_federated_glm_equals_statsmodels_on_the_pooled_rows(fam_name: str, secure: bool) -> None:
    x, y = DATASETS[fam_name]()
    minimum = 34  # 11 parameters need 34 rows at DataSHIELD's 0.33 parameters per row
    summary, pooled, parts = federated_and_pooled(x, y, fam_name, minimum, secure)

    sizes = sorted(len(py) for _, py in parts)
    assert len(parts) == PARTIES and sizes[-1] >= 3 * sizes[0]  # very uneven
    assert summary.converged
    np.testing.assert_allclose(summary.estimates, pooled.params, rtol=1e-6)
    np.testing.assert_allclose(summary.std_errors, pooled.bse, rtol=1e-6)
    assert summary.deviance == pytest.approx(pooled.deviance, rel=1e-8)
    assert summary.aic == pytest.approx(pooled.aic, rel=1e-8)
    assert summary.scale == pytest.approx(pooled.scale, rel=1e-8)
    if summary.statistic != "t":  # statsmodels' GLM uses z for every family; ours t for gaussian
        np.testing.assert_allclose([c.p_value for c in summary.coefficients], pooled.pvalues, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose([c.ci_low for c in summary.coefficients], pooled.conf_int()[:, 0], rtol=1e-6)


def test_gaussian_t_statistics_match_statsmodels_with_t() -> None:
    x, y = load_diabetes(return_X_y=True)
    summary, pooled, _ = federated_and_pooled(x, y, "gaussian", 34, secure=False)
    design = np.vstack([design_matrix(px, *pooled_scaling([(x, y)])) for px in [x]])
    ols = sm.OLS(y, design).fit()
    np.testing.assert_allclose([c.p_value for c in summary.coefficients], ols.pvalues, rtol=1e-6)
    np.testing.assert_allclose([c.ci_high for c in summary.coefficients], ols.conf_int()[:, 1], rtol=1e-6)
    assert summary.iterations == 1  # the normal equations from one round of sums


def test_logistic_regression_converges_in_at_most_10_rounds_on_breast_cancer() -> None:
    x, y = breast_cancer()
    summary, pooled, _ = federated_and_pooled(x, y, "binomial", 34, secure=False)
    assert summary.converged and summary.iterations <= 10, summary.iterations


def test_ridge_equals_the_closed_form() -> None:
    x, y = load_diabetes(return_X_y=True)
    parts = split(x, y, 34)
    mean, scale = pooled_scaling(parts)
    designs = [design_matrix(px, mean, scale) for px, _ in parts]
    newton = NewtonFit(family("gaussian"), 11, ridge=50.0)
    step = fit(plain_total(designs, [py for _, py in parts], "gaussian"), newton)
    design = np.vstack(designs)
    pooled_y = np.concatenate([py for _, py in parts])
    expected = np.linalg.solve(design.T @ design + newton.penalty(), design.T @ pooled_y)
    np.testing.assert_allclose(step.beta, expected, rtol=1e-10)
    assert abs(step.beta[1:]).sum() < abs(np.linalg.lstsq(design, pooled_y, rcond=None)[0][1:]).sum()


@pytest.mark.parametrize(
    ("rows", "parties", "parameters", "rule"),
    [(9, 5, 2, "min_rows"), (100, 2, 2, "min_parties"), (30, 5, 11, "max_parameter_fraction")],
)
def test_a_request_that_breaks_a_disclosure_rule_is_refused_naming_the_rule(rows, parties, parameters, rule) -> None:
    with pytest.raises(DisclosureRefused, match=f"disclosure rule {rule}") as refused:
        check_disclosure(DisclosureRules(), rows, parties, parameters)
    assert refused.value.rule == rule
    check_disclosure(DisclosureRules(), 100, 5, 11)  # within every rule: no refusal


def test_sums_beyond_the_secure_codec_are_refused_not_clipped() -> None:
    design = np.column_stack([np.ones(20), np.full(20, 1e5)])
    sums = local_sums(design, np.zeros(20), np.zeros(2), family("gaussian"))  # X'X holds 20 * 1e10
    with pytest.raises(ProtocolError, match="beyond the secure codec's range"):
        secure_vector(sums)


def test_sums_vector_round_trips() -> None:
    design = np.array([[1.0, 2.0], [1.0, -1.0], [1.0, 0.5]])
    sums = local_sums(design, np.array([1.0, 0.0, 1.0]), np.array([0.1, -0.2]), family("binomial"))
    back = GlmSums.from_vector(sums.to_vector(), 2)
    np.testing.assert_array_equal(back.information, sums.information)
    np.testing.assert_array_equal(back.score, sums.score)
    assert (back.count, back.deviance) == (3, sums.deviance)


def test_constant_features_are_refused_with_what_to_do() -> None:
    design = np.column_stack([np.ones(30), np.arange(30.0), np.zeros(30)])  # a constant (standardised) feature
    sums = local_sums(design, np.arange(30.0), np.zeros(3), family("gaussian"))
    with pytest.raises(ConfigError, match="singular.*set model.ridge"):
        NewtonFit(family("gaussian"), 3).step(sums)
    assert NewtonFit(family("gaussian"), 3, ridge=1.0).step(sums).converged  # ridge makes it solvable


def test_a_glm_config_names_its_family_and_takes_no_strategy() -> None:
    with pytest.raises(ValidationError, match="kind glm needs a family"):
        ModelConfig(kind="glm")
    with pytest.raises(ValueError, match="family 'binomial' needs a binary contract, this one is regression"):
        ModelConfig(kind="glm", family="binomial").spec(10, 1, "regression")
    spec = ModelConfig(kind="glm", family="poisson").spec(10, 1, "regression")
    assert [layer.type for layer in spec.layers] == ["linear", "exp"]
