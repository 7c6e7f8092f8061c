"""Leaving holds: a party that leaves (even mid-round) ends the coordinator's wait for it at once, and every later
run, from the same config and with a new coordinator over the same store, refuses its key until it is re-admitted.
Real party agents and the real federation store (SQLite); the transport, tracker and metadata are twins."""

from __future__ import annotations

import dataclasses
import threading

from typer.testing import CliRunner

from components.adapters.store import FederationStore
from components.core.config import load_federation_config
from components.core.protocol import Kind
from components.run.federation import FederationRun
from flows.cli import app
from flows.federation import PLAIN_STEPS, drive
from party_agent.agent import announce
from tests.run_twins import fresh_edges, twin_federation, twin_parties


def test_a_party_that_leaves_mid_round_is_refused_by_every_later_run_until_readmitted(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2, min_parties=2, round_timeout_s=60)
    config = load_federation_config(federation.config_path)
    store_url = federation.workspace.store_url

    def run(run_id: str):
        """A new coordinator (new endpoint, new memory) over the same federation store: what a restart is."""
        edges = dataclasses.replace(fresh_edges(federation.network), store=FederationStore(store_url))
        run = FederationRun(config, federation.workspace, run_id, edges=edges)
        drive(run, PLAIN_STEPS)
        return run.summary

    release = threading.Event()
    with twin_parties(federation) as agents:
        gamma = next(agent for agent in agents if agent.config.name == "gamma")
        train = gamma._train

        def leave_mid_round(request, tensors):  # gamma got round 1's request and leaves instead of answering
            announce(gamma.config, Kind.LEAVE, {}, timeout_s=10, dealer=federation.network.dealer)
            release.wait(timeout=60)
            return train(request, tensors)

        gamma._train = leave_mid_round
        first = run("first")
        release.set()
        del gamma._train  # gamma's daemon keeps running and knocking, honestly
        second = run("second")
        known_after_second = [row["name"] for row in FederationStore(store_url).party_rows()]
        readmitted = CliRunner().invoke(
            app, ["readmit", "gamma", "--config", str(federation.config_path), "-w", str(federation.workspace.root)]
        )
        third = run("third")

    assert first.status == "completed"
    assert [sorted(r.participants) for r in first.rounds] == [["alpha", "beta"]] * 2
    assert first.rounds[0].seconds < 15  # not the 60 s round deadline: the leave settled gamma's request
    assert "gamma" not in first.validation  # what it validated is kept under an anonymous name only

    assert second.status == "completed"
    assert sorted(second.validation) == ["alpha", "beta"]
    assert [sorted(r.participants) for r in second.rounds] == [["alpha", "beta"]] * 2
    assert "gamma" not in second.contributions and "gamma" not in second.rewards
    assert known_after_second == ["alpha", "beta"]

    assert readmitted.exit_code == 0, readmitted.output
    assert "gamma is admitted again" in readmitted.output
    assert [sorted(r.participants) for r in third.rounds] == [["alpha", "beta", "gamma"]] * 2


def test_readmitting_a_party_that_never_left_changes_nothing(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=2, rounds=1)
    answer = CliRunner().invoke(
        app, ["readmit", "beta", "--config", str(federation.config_path), "-w", str(federation.workspace.root)]
    )
    assert answer.exit_code == 0 and "beta had not left" in answer.output
    assert FederationStore(federation.workspace.store_url).departed(["x" * 40]) == set()
