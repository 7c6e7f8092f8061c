"""A whole federation (3 party agents, validate to promote) in one process over the edges' twins: the run's logic
tested without sockets, servers or subprocesses. The integration tests run the same steps for real."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from components.adapters.checkpoints import RunCheckpoints, shown_status
from components.core.config import PromotionConfig, load_federation_config
from components.core.errors import ContractError, RunStateError
from components.core.protocol import Kind
from components.run import directory
from components.run.federation import FederationRun
from components.run.promoter import Promoter
from components.twins.tracking import MemoryRegistry
from flows.cli import app as cli_app
from flows.federation import PLAIN_STEPS, drive
from party_agent.config import load_party_config
from tests.federation_helpers import wait_until
from tests.run_twins import fresh_edges, twin_federation, twin_parties


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


def test_each_round_sends_its_requests_to_the_party_with_the_most_validated_rows_first(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2, partition_kind="dirichlet")
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "ordered", edges=federation.edges)
        sent: list[tuple[int, str]] = []
        send = run.coordinator._send

        def recording(routing_id, envelope, tensors=None):
            if envelope.kind == Kind.TRAIN:
                sent.append(
                    (envelope.round, next(n for n, i in run.coordinator.parties.items() if i.routing_id == routing_id))
                )
            return send(routing_id, envelope, tensors)

        run.coordinator._send = recording
        drive(run, PLAIN_STEPS)
    rows = run.rounds.rows_validated
    assert len(set(rows.values())) == 3  # a Dirichlet split: every party its own row count
    expected = sorted(rows, key=lambda party: -rows[party])
    assert [party for round_number, party in sent if round_number == 1] == expected
    assert [party for round_number, party in sent if round_number == 2] == expected


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


def test_a_completed_run_is_final_resume_and_rerun_refuse_it_and_rewrite_nothing(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=2, rounds=1)
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        drive(FederationRun(config, federation.workspace, "done", edges=federation.edges), PLAIN_STEPS)
    summary_path = federation.workspace.summary_path("done")
    record = summary_path.read_bytes()
    frozen = RunCheckpoints(federation.workspace.checkpoints, "done").config.read_bytes()
    model = config.promotion.model_name
    assert [v.version for v in federation.edges.registry.versions(model)] == [1]

    with pytest.raises(RunStateError, match=r"run done completed at .*: its record .* is final and is not redone"):
        FederationRun(config, federation.workspace, "done", edges=federation.edges)
    resumed = CliRunner().invoke(cli_app, ["resume", "do", "--workspace", str(federation.workspace.root)])  # a prefix
    assert resumed.exit_code == 1
    assert (
        "error: run done completed at " in resumed.output and "start a new run with `consortia run`" in resumed.output
    )
    assert summary_path.read_bytes() == record  # status, promotion decision and version untouched
    assert RunCheckpoints(federation.workspace.checkpoints, "done").config.read_bytes() == frozen
    assert [v.version for v in federation.edges.registry.versions(model)] == [1]  # no second registration


def test_a_run_is_leased_to_its_live_coordinator_and_shown_interrupted_once_it_is_gone(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=2, rounds=1)
    config = load_federation_config(federation.config_path)
    root = federation.workspace.checkpoints
    run = FederationRun(config, federation.workspace, "leased", edges=federation.edges)
    try:
        assert RunCheckpoints(root, "leased").coordinator_alive()
        assert shown_status(root, "leased", "running") == "running"
        with pytest.raises(RunStateError, match="run leased is being coordinated by another live process"):
            FederationRun(config, federation.workspace, "leased", edges=fresh_edges(federation.network))
    finally:
        run.close()
    assert not RunCheckpoints(root, "leased").coordinator_alive()
    assert shown_status(root, "leased", "running") == "interrupted"  # the store still says running
    assert shown_status(root, "leased", "failed") == "failed"
    assert shown_status(root, "elsewhere", "running") == "running"  # no checkpoints here: another host's run


def test_promotion_compares_exact_values_and_names_the_registered_and_the_champion_version():
    registry = MemoryRegistry()  # no tracker: any model URI registers
    promoter = Promoter(PromotionConfig(model_name="m"), registry, "binary")
    accuracy = 18 / 19  # 0.947368421052..., not a round number
    first, registered = promoter.promote("memory://1", {"accuracy": accuracy}, "run-1", {})
    same, again = promoter.promote("memory://2", {"accuracy": accuracy}, "run-2", {})
    better, third = promoter.promote("memory://3", {"accuracy": 19 / 19}, "run-3", {})

    assert (first.decision, first.version, first.champion_version, registered) == ("promoted", 1, 1, 1)
    assert float(registry.versions("m")[0].tags["metric.accuracy"]) == accuracy  # stored exactly
    # an identical model gains exactly nothing: not "-0.0000" from a rounded champion
    assert (same.decision, same.version, same.champion_version, again) == ("kept", 2, 1, 2)
    assert "(gain +0.0000, needs > +0.0000)" in same.reason and same.champion_value == accuracy
    assert (better.decision, better.version, better.champion_version, third) == ("promoted", 3, 3, 3)
    assert registry.version_by_alias("m", "champion").version == 3


def test_the_coordinator_says_who_it_awaits_and_who_it_leaves_out(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(directory, "JOIN_NOTICE_S", 0.5)
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=1, min_parties=2, join_timeout_s=5)
    config = load_federation_config(federation.config_path)
    with caplog.at_level(logging.INFO, logger="components.run.directory"), twin_parties(federation, ["alpha", "beta"]):
        run = FederationRun(config, federation.workspace, "two-of-three", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    said = [record.getMessage() for record in caplog.records if record.name == "components.run.directory"]
    assert any(line.startswith("waiting for gamma (2 of 3 parties connected), up to 1 s more") for line in said)
    assert said[-1] == "starting with alpha, beta; left out: gamma (not connected within join_timeout_s=5 s)"
    assert run.summary.status == "completed" and run.summary.rounds[0].participants == ["alpha", "beta"]


def test_a_party_whose_data_fails_the_contract_is_told_why_the_run_stopped(tmp_path, caplog):
    federation = twin_federation(tmp_path / "ws", parties=2, rounds=1)
    spoiled = load_party_config(federation.layout.party_configs["beta"]).data
    frame = pd.read_csv(spoiled)
    frame.loc[0, "mean_radius"] = None
    frame.to_csv(spoiled, index=False)
    config = load_federation_config(federation.config_path)
    with caplog.at_level(logging.INFO, logger="party_agent"), twin_parties(federation):
        with pytest.raises(ContractError):
            drive(FederationRun(config, federation.workspace, "spoiled", edges=federation.edges), PLAIN_STEPS)
        wait_until(lambda: any("run spoiled failed" in r.getMessage() for r in caplog.records), 10, "the run's end")
    said = [r.getMessage() for r in caplog.records if r.name.startswith("party_agent")]
    assert any(line.startswith("joined: the coordinator at ") for line in said) and "welcome: {}" not in str(said)
    ends = [line for line in said if line.startswith("run spoiled ")]  # not the plan's "run spoiled: accept"
    assert ends and all(
        line.startswith("run spoiled failed: ContractError: data contract violated at beta: ") for line in ends
    )
    assert "expect_column_values_to_not_be_null(mean_radius)" in ends[0]


def test_runs_and_parties_on_a_workspace_with_nothing_recorded_say_so_and_create_nothing(tmp_path):
    for command in ("runs", "parties"):
        result = CliRunner().invoke(cli_app, [command, "--workspace", str(tmp_path / "ws")])
        assert result.exit_code == 0, result.output
        assert " ".join(result.output.split()).startswith(f"nothing recorded in {tmp_path / 'ws'} yet: run ")
    assert list(tmp_path.iterdir()) == []
