"""A logistic GLM in a real run: party-agent processes, ZeroMQ with CURVE, the Prefect flow, MLflow's registry."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from components.adapters.checkpoints import RunCheckpoints, load_arrays
from components.adapters.contracts import load_contract, read_dataset, split_features
from components.core.glm.family import family
from components.core.glm.newton import NewtonFit, fit
from components.core.glm.sums import design_matrix, local_sums
from components.core.protocol import Kind, decode
from flows.processes import PartyProcesses
from party_agent.wire_capture import WireCapture
from tests.federation_helpers import make_federation, run_consortia

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def test_a_ridge_logistic_glm_runs_through_the_flow_and_the_registry_serves_its_coefficients(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws", parties=3, rounds=20, min_parties=3, model={"kind": "glm", "family": "binomial", "ridge": 1.0}
    )
    with PartyProcesses(layout.party_configs, workspace.logs):
        done = run_consortia("run", str(layout.federation_config), "--run-id", "glm", workspace=workspace.root)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "binomial GLM" in done.stdout and "intercept" in done.stdout and "converged in" in done.stdout

    summary = json.loads(workspace.summary_path("glm").read_text())
    glm = summary["glm"]
    assert summary["status"] == "completed" and glm["converged"] and glm["statistic"] == "z"
    assert len(summary["rounds"]) == glm["iterations"] < 20  # one round per Newton iteration, converged early

    # the same fit on the pooled rows, in one place: equal to float64 rounding
    contract = load_contract("breast_cancer")
    parts = [split_features(read_dataset(path, contract), contract) for path in layout.party_data.values()]
    start = load_arrays(RunCheckpoints(workspace.checkpoints, "glm").global_params(0))
    mean, scale = (start[name].astype(np.float64) for name in ("standardize.mean", "standardize.scale"))
    design = design_matrix(np.vstack([x for x, _ in parts]), mean, scale)
    y = np.concatenate([labels for _, labels in parts]).astype(np.float64)
    pooled = fit(lambda beta: local_sums(design, y, beta, family("binomial")), NewtonFit(family("binomial"), 31, 1.0))
    estimates = np.array([c["estimate"] for c in glm["coefficients"]])
    np.testing.assert_allclose(estimates, pooled.beta, rtol=1e-8, atol=1e-12)

    # what left a party: sums vectors, never a row
    sent = [decode(frames)[0] for frames in WireCapture.read(layout.party_configs["alpha"].parent / "wire.bin")]
    sums = [envelope for envelope in sent if envelope.kind == Kind.GLM_SUMS_RESULT]
    assert len(sums) == glm["iterations"] and not any(envelope.kind == Kind.UPDATE for envelope in sent)
    assert all([t.name for t in envelope.tensors] == ["sums"] for envelope in sums)

    mlflow.set_tracking_uri(workspace.tracking_uri)
    served = mlflow.pyfunc.load_model("models:/consortia-breast-cancer@champion")
    holdout = pd.read_csv(layout.holdout)
    hx, _ = split_features(holdout, contract)
    expected = expit(design_matrix(hx, mean, scale) @ estimates)
    np.testing.assert_allclose(served.predict(holdout)["1"].to_numpy(), expected, rtol=1e-4, atol=1e-6)
