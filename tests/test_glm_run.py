"""A GLM through the whole run (validate to promote) in one process over twins: the real party agents compute the
sums, the run's rounds are Newton iterations, and the registered model predicts with the coefficients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from rich.console import Console

from app.queries import glm_frame
from components.adapters.contracts import load_contract, split_features
from components.core.config import load_federation_config
from components.core.errors import QuorumNotReached
from components.core.glm.sums import design_matrix
from components.core.protocol import Kind, decode
from components.ml.serving import ServedPredictor
from components.run.federation import FederationRun
from flows.federation import PLAIN_STEPS, drive
from flows.glm_cli import print_glm
from party_agent.wire_capture import WireCapture
from tests.run_twins import twin_federation, twin_parties

SM_FAMILIES = {"gaussian": sm.families.Gaussian(), "poisson": sm.families.Poisson()}


@pytest.mark.parametrize(
    ("fam", "secure"), [("gaussian", False), ("gaussian", True), ("poisson", False)], ids=["plain", "secure", "poisson"]
)
def test_a_glm_run_equals_statsmodels_on_the_pooled_rows_and_serves_its_coefficients(tmp_path, fam, secure):
    federation = twin_federation(
        tmp_path / "ws",
        parties=3,
        rounds=20,
        dataset="diabetes",  # the target is a count of days as well: poisson fits it too
        model={"kind": "glm", "family": fam},
        min_parties=3,
        secure_aggregation={"enabled": secure, "threshold_fraction": 0.66},
    )
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "glm-run", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    summary = run.summary
    assert summary.status == "completed", summary.error
    glm = summary.glm
    assert glm is not None and glm.converged
    assert [r.round for r in summary.rounds] == list(range(1, glm.iterations + 1))
    if fam == "gaussian":
        assert glm.iterations == 1  # one round of sums: the normal equations
    assert summary.valuation_method.startswith("none: a GLM")

    contract = load_contract("diabetes", 1)
    pooled = pd.concat([pd.read_csv(path) for path in federation.layout.party_data.values()])
    x, y = split_features(pooled, contract)
    params = run.checkpoints.load_global(glm.iterations)
    mean, scale = params["standardize.mean"].astype(np.float64), params["standardize.scale"]
    expected = sm.GLM(y.astype(np.float64), design_matrix(x, mean, scale), family=SM_FAMILIES[fam]).fit(tol=1e-12)
    np.testing.assert_allclose(glm.estimates, expected.params, rtol=1e-6)
    np.testing.assert_allclose(glm.std_errors, expected.bse, rtol=1e-6)
    assert [c.name for c in glm.coefficients] == ["intercept", *contract.features]

    # the registered model predicts with the coefficients: b0 + x'b (gaussian), exp(b0 + x'b) (poisson)
    assert summary.promotion is not None and summary.promotion.version == 1
    logged = list(federation.tracker.models.values())[-1]
    holdout = pd.read_csv(federation.layout.holdout)
    predicted = ServedPredictor(logged.served, logged.state).predict(holdout)["prediction"].to_numpy()
    eta = design_matrix(split_features(holdout, contract)[0], mean, scale) @ expected.params
    np.testing.assert_allclose(predicted, np.exp(eta) if fam == "poisson" else eta, rtol=1e-4)

    assert federation.tracker.metrics[glm.iterations]["glm_aic"] == glm.aic
    assert federation.tracker.artifacts["glm_summary.json"]["coefficients"][0]["name"] == "intercept"
    audit = federation.layout.party_configs["alpha"].parent / "wire.bin"
    sums = [decode(f)[0] for f in WireCapture.read(audit) if decode(f)[0].kind == Kind.GLM_SUMS_RESULT]
    assert len(sums) == glm.iterations
    wire = [("masked", "uint64")] if secure else [("sums", "float64")]
    assert all([(t.name, t.dtype) for t in envelope.tensors] == wire for envelope in sums)
    console = Console(record=True, width=200)
    print_glm(glm, console)  # what `consortia run` prints
    printed = console.export_text()
    assert f"AIC {glm.aic:.6g}" in printed and f"{glm.coefficients[0].estimate:.4g}" in printed
    table = glm_frame(summary)  # the dashboard's coefficient table
    assert list(table["name"]) == ["intercept", *contract.features]
    assert f"{glm.statistic} value" in table.columns


def test_a_party_refuses_glm_sums_that_break_its_disclosure_rule_and_names_the_rule(tmp_path):
    federation = twin_federation(
        tmp_path / "ws", parties=3, rounds=20, dataset="diabetes", model={"kind": "glm", "family": "gaussian"}
    )
    gamma = federation.layout.party_configs["gamma"]
    party = yaml.safe_load(gamma.read_text())
    party["disclosure"] = {"min_parties": 4}  # this owner wants its sums added to at least 3 others'
    gamma.write_text(yaml.safe_dump(party))
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "glm-refused", edges=federation.edges)
        with pytest.raises(
            QuorumNotReached, match="gamma.*disclosure rule min_parties: the request adds the sums of 3"
        ):
            drive(run, PLAIN_STEPS)
    assert run.summary.status == "failed" and "disclosure rule min_parties" in (run.summary.error or "")
    assert run.summary.rounds == [] and run.summary.glm is None  # no iteration ran without gamma's sums
