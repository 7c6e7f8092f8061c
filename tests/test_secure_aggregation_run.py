"""Secure aggregation in a real run: the coordinator receives only masked vectors, yet learns the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from components.adapters.checkpoints import RunCheckpoints, load_arrays
from components.adapters.contracts import load_contract, read_dataset, split_features
from components.core.config import load_federation_config
from components.core.model_spec import ModelSpec
from components.core.secagg.encoding import FixedPoint
from components.core.secagg.vectors import encode_update
from components.core.strategies import ClientUpdate
from components.core.strategies.fedavg import FedAvg
from components.ml.model import parameter_layout
from components.ml.training import train_local
from flows.processes import PartyProcesses
from party_agent.wire_capture import WireCapture
from tests.federation_helpers import make_federation, run_consortia

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def test_coordinator_sees_only_masked_vectors_and_still_gets_fedavg(tmp_path):
    workspace, layout = make_federation(tmp_path / "ws", parties=3, rounds=2, min_parties=3)
    secure_config = layout.federation_config.with_name("secure.yaml")
    secure_config.write_text(
        layout.federation_config.read_text() + "secure_aggregation: {enabled: true, threshold_fraction: 0.66}\n"
    )
    with PartyProcesses(layout.party_configs, workspace.logs):
        secure = run_consortia("run", str(secure_config), "--run-id", "secure", workspace=workspace.root)
        assert secure.returncode == 0, secure.stdout + secure.stderr

    config = load_federation_config(secure_config)
    contract = load_contract("breast_cancer")
    spec = ModelSpec(n_features=contract.n_features, n_classes=2, hidden=config.model.hidden, seed=config.model.seed)
    checkpoints = RunCheckpoints(workspace.checkpoints, "secure")
    data = {
        party: split_features(read_dataset(workspace.parties / party / "data" / "train.csv", contract), contract)
        for party in layout.party_configs
    }

    # every round's model is plain FedAvg of the true updates (retrained here), up to fixed-point rounding
    for round_number in (1, 2):
        start = load_arrays(checkpoints.global_params(round_number - 1))
        updates = []
        for party, (features, labels) in data.items():
            params, result = train_local(spec, start, features, labels, config.training, round_number)
            updates.append(ClientUpdate(party, params, result.num_examples))
        expected = FedAvg().aggregate(round_number, start, updates)
        final = load_arrays(checkpoints.global_params(round_number))
        for name in expected:
            np.testing.assert_allclose(final[name], expected[name], atol=1e-5)
    summary = json.loads(workspace.summary_path("secure").read_text())
    assert summary["contributions"] == {} and "secure aggregation" in summary["valuation_method"]
    assert all(sorted(r["participants"]) == ["alpha", "beta", "gamma"] for r in summary["rounds"])

    # what each party sent is statistically independent of its true update
    codec = FixedPoint()
    for party, (features, labels) in data.items():
        messages = list(WireCapture.read(workspace.parties / party / "wire.bin"))
        blob = b"".join(b"".join(frames) for frames in messages)
        updates = [m for m in messages if json.loads(m[0])["kind"] == "update"]
        assert len(updates) == 2
        for frames in updates:
            header = json.loads(frames[0])
            assert [t["name"] for t in header["tensors"]] == ["masked"]
            round_number = header["round"]
            start = load_arrays(checkpoints.global_params(round_number - 1))
            true_params, result = train_local(spec, start, features, labels, config.training, round_number)
            for array in true_params.values():
                if array.size > 8:
                    assert array.tobytes() not in blob
            truth = codec.encode(encode_update(true_params, parameter_layout(spec), result.num_examples))
            masked = np.frombuffer(frames[1], dtype="<u8")
            correlation = np.corrcoef(truth.view(np.int64).astype(float), masked.astype(float))[0, 1]
            assert abs(correlation) < 0.15, (party, round_number, correlation)
            assert stats.kstest(masked / 2.0**64, "uniform").pvalue > 1e-3
