"""Run plans over a whole federation: real party agents with their policy files, the real run (edges as twins).

A party's policy rejects a plan naming the rule, a held plan waits for the owner's `approve` and then runs,
and a plan the owner denies never trains: too many refusals fail the run early, naming party and reason."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from typer.testing import CliRunner

from components.core.config import load_federation_config
from components.core.errors import PolicyRefusal
from components.run.federation import FederationRun
from flows.federation import PLAIN_STEPS, drive
from party_agent.cli import app as party_cli
from party_agent.config import load_party_config, requests_folder
from tests.run_twins import twin_federation, twin_parties


def _policy(federation, party: str, **rules) -> None:
    config = load_party_config(federation.layout.party_configs[party])
    policy = yaml.safe_load(config.policy.read_text())
    policy.update(rules)
    config.policy.write_text(yaml.safe_dump(policy))


def _owner_decides(federation, party: str, *args: str) -> threading.Thread:
    """The owner, at the terminal: waits for the plan to show up in `party-agent requests`, then decides."""
    config_path = str(federation.layout.party_configs[party])
    answers = []

    def decide():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = CliRunner().invoke(party_cli, ["requests", "--config", config_path])
            if "plan " in listed.output:
                time.sleep(1.0)  # the run waits meanwhile
                answers.append(CliRunner().invoke(party_cli, [*args, "--config", config_path]))
                return
            time.sleep(0.2)

    thread = threading.Thread(target=decide, daemon=True)
    thread.answers = answers  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_a_party_whose_policy_breaks_is_left_out_and_the_summary_names_its_rule(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2, min_parties=2)
    _policy(federation, "gamma", max_rounds=1)
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "ruled", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    summary = run.summary
    assert summary.status == "completed"
    assert summary.plan_decisions["gamma"]["verdict"] == "reject"
    assert summary.plan_decisions["gamma"]["rule"] == "max_rounds"
    assert summary.plan_decisions["alpha"]["verdict"] == "accept"
    assert sorted(summary.validation) == ["alpha", "beta"]  # gamma did no work at all
    assert all(sorted(r.participants) == ["alpha", "beta"] for r in summary.rounds)


def test_a_held_plan_waits_for_the_owners_approval_and_then_the_party_trains(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2, min_parties=3, approval_timeout_s=60)
    _policy(federation, "gamma", approval="manual")
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        owner = _owner_decides(federation, "gamma", "approve", "held")
        run = FederationRun(config, federation.workspace, "held", edges=federation.edges)
        drive(run, PLAIN_STEPS)
        owner.join(timeout=5)
    summary = run.summary
    assert owner.answers and owner.answers[0].exit_code == 0, owner.answers
    assert summary.status == "completed"
    assert summary.plan_decisions["gamma"] == {
        "verdict": "accept",
        "rule": None,
        "reason": "approved by the data owner",
        "decided_by": "person",
    }
    assert all(sorted(r.participants) == ["alpha", "beta", "gamma"] for r in summary.rounds)


def test_a_plan_the_owner_denies_never_trains_and_the_failed_run_names_party_and_reason(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2, min_parties=3, approval_timeout_s=60)
    _policy(federation, "gamma", approval="manual")
    config = load_federation_config(federation.config_path)
    with twin_parties(federation) as agents:
        trained = []
        gamma = next(a for a in agents if a.config.name == "gamma")
        train = gamma._train
        gamma._train = lambda request, tensors: trained.append(request) or train(request, tensors)
        owner = _owner_decides(federation, "gamma", "deny", "denied", "--reason", "not before the audit")
        run = FederationRun(config, federation.workspace, "denied", edges=federation.edges)
        with pytest.raises(PolicyRefusal, match="gamma: reject \\(owner\\): not before the audit"):
            drive(run, PLAIN_STEPS)
        owner.join(timeout=5)
    summary = run.summary
    assert summary.status == "failed"
    assert "gamma: reject (owner): not before the audit" in summary.error
    assert summary.plan_decisions["gamma"]["reason"] == "not before the audit"
    assert summary.rounds == [] and summary.validation == {} and trained == []
    listed = CliRunner().invoke(
        party_cli, ["requests", "--all", "--config", str(federation.layout.party_configs["gamma"])]
    )
    assert "rejected" in listed.output
    assert requests_folder(gamma.config).joinpath("denied.json").exists()
