"""A whole federation (3 party agents, validate to promote) in one process over the edges' twins: the run's logic
tested without sockets, servers or subprocesses. The integration tests run the same steps for real."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from components.adapters.checkpoints import RunCheckpoints
from components.core.config import load_federation_config
from components.run.federation import FederationRun
from flows.federation import PLAIN_STEPS, drive
from tests.run_twins import twin_federation, twin_parties


def test_a_whole_federation_runs_in_one_process_over_twins(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=3, valuation={"method": "exact"})
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        started = time.perf_counter()
        run = FederationRun(config, federation.workspace, "twin-run", edges=federation.edges)
        path = drive(run, PLAIN_STEPS)
        seconds = time.perf_counter() - started
    print(f"whole federation over twins: {seconds:.2f} s")  # measured, not asserted (README: under 5 s)
    summary = run.summary
    assert summary.status == "completed"
    assert path.endswith("twin-run.json")
    assert [(r.round, sorted(r.participants)) for r in summary.rounds] == [
        (n, ["alpha", "beta", "gamma"]) for n in (1, 2, 3)
    ]
    assert summary.final_metrics is not None and summary.final_metrics.accuracy > 0.9
    assert set(summary.validation) == {"alpha", "beta", "gamma"}
    assert all(v["success"] for v in summary.validation.values())
    # exact Shapley is efficient: per round, contributions sum to the utility gain of the grand coalition
    assert set(summary.contributions) == {"alpha", "beta", "gamma"}
    assert sum(summary.rewards.values()) == np.float64(config.rewards.pool)
    assert summary.promotion is not None and summary.promotion.decision == "promoted"
    # the twins saw what the real stores would: three round rows, metrics per step, one registered version
    assert sorted(row["round"] for row in federation.store.tables["rounds"] if row["run_id"] == "twin-run") == [1, 2, 3]
    tracked = federation.tracker.runs[summary.mlflow_run_id]
    assert sorted(step for step, values in tracked.metrics.items() if "accuracy" in values) == [1, 2, 3]
    assert tracked.status == "FINISHED"
    assert federation.edges.registry.version_by_alias(config.promotion.model_name, "champion").version == 1
    final = RunCheckpoints(federation.workspace.checkpoints, "twin-run").load_global(3)
    assert set(final) == set(run.layout)


DP = {"inner": "fedavg", "clip_norm": 5.0, "noise_multiplier": 1.0}
DP_CHAINS = {
    "dp at the top": {"name": "dp", "options": DP},
    "dp inside clipping": {"name": "clipping", "options": {"max_norm": 50.0, "inner": "dp", "inner_options": DP}},
}


def _allow_epsilon(federation, epsilon: float) -> None:
    for path in federation.layout.party_configs.values():
        party = yaml.safe_load(path.read_text())
        party["privacy_budget"] = {"epsilon": epsilon, "delta": 1e-5}
        path.write_text(yaml.safe_dump(party))


@pytest.mark.parametrize("chain", sorted(DP_CHAINS))
def test_dp_anywhere_in_the_chain_reports_epsilon_stops_at_the_budget_and_releases_nothing_from_raw_updates(
    tmp_path, chain
):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=5, strategy=DP_CHAINS[chain])
    _allow_epsilon(federation, 8.0)
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "private", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    summary = run.summary
    # opacus RDP, z=1, q=1: 4.73 after round 1, 7.08 after 2, 9.01 after 3 > 8
    assert [row.epsilon for row in summary.rounds] == pytest.approx([4.7285, 7.0774], abs=1e-3)
    assert "round 3 would bring epsilon to 9.010" in summary.stopped_early
    # central DP: each update is raw at the coordinator, so nothing computed from single updates is released
    assert summary.contributions == {} and summary.round_contributions == {}
    assert summary.valuation_method.startswith("none: under central differential privacy")
    assert summary.valuation is None  # no errors or ranks either: they too come from raw updates
    assert all(reward.accuracy is None for reward in summary.model_rewards.values())
    assert not (federation.workspace.checkpoints / "private" / "rewards").exists()
    assert sum(summary.rewards.values()) == pytest.approx(config.rewards.pool)  # the participation floor alone
    assert not any(row["value"] for row in federation.store.tables["contributions"] if row["run_id"] == "private")


def test_local_dp_noises_every_update_at_the_party_and_values_those_private_updates(tmp_path):
    strategy = {"name": "dp", "options": {**DP, "mode": "local"}}
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2, strategy=strategy)
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "local", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    checkpoints = RunCheckpoints(federation.workspace.checkpoints, "local")
    start = checkpoints.load_global(0)
    for update in checkpoints.load_updates(1):
        delta = np.concatenate(
            [(update.params[n] - start[n]).ravel() for n in start if not n.startswith("standardize")]
        )
        # clipped to 5 then N(0, 5^2) noise on every coordinate: the delta's norm is about 5 * sqrt(d), far above 5
        assert np.linalg.norm(delta) > 5 * np.sqrt(delta.size) * 0.8
        for name in ("standardize.mean", "standardize.scale"):  # fitted statistics travel un-noised
            np.testing.assert_array_equal(update.params[name], start[name])
    assert run.summary.valuation_method == config.valuation.method
    assert set(run.summary.contributions) == {"alpha", "beta", "gamma"}
    assert set(run.summary.valuation.errors) == {"alpha", "beta", "gamma"}  # from the private updates only
