"""The party's audit log: hash-chained JSON lines; `party-agent audit verify` finds an edited, removed or swapped
line; a run over twins leaves a log of its plan, the decision and every update's size and hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from components.adapters.checkpoints import RunCheckpoints
from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.run.federation import FederationRun
from flows.demo import prepare_demo
from flows.federation import PLAIN_STEPS, drive
from party_agent.audit import AuditLog, read_entries, verify
from party_agent.cli import app as party_cli
from party_agent.config import load_party_config
from tests.run_twins import twin_federation, twin_parties


@pytest.fixture
def logged(tmp_path):
    """party.yaml naming an audit log of five entries."""
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append("plan", "run-1", 0, plan={"rounds": 2})
    log.append("decision", "run-1", 0, verdict="accept", rule=None)
    for round_number in (1, 2):
        log.append("sent", "run-1", round_number, kind="update", bytes=1000 + round_number, metrics=["train_loss"])
    log.append("sent", "run-1", 0, kind="bye", bytes=100)
    config = {
        "name": "alpha",
        "data": "alpha.csv",
        "contract": "breast_cancer",
        "coordinator_public_key": "k" * 40,
        "secret_key_file": "keys/alpha.key_secret",
        "audit_log": "audit.jsonl",
    }
    path = tmp_path / "party.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, tmp_path / "audit.jsonl"


def _verify(config):
    answer = CliRunner().invoke(party_cli, ["audit", "verify", "--config", str(config)])
    answer.said = " ".join(answer.output.split())  # the console wraps long lines
    return answer


def _rewrite(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_an_untouched_log_verifies_and_each_entry_names_the_one_before(logged):
    config, path = logged
    entries = read_entries(path)
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev"] == "0" * 64
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    answer = _verify(config)
    assert answer.exit_code == 0 and "5 entries, chain intact" in answer.said


def test_an_edited_line_is_found(logged):
    config, path = logged
    lines = path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["detail"]["bytes"] = 1  # a smaller update than the one that left
    lines[2] = json.dumps(entry)
    _rewrite(path, lines)
    answer = _verify(config)
    assert answer.exit_code == 1
    assert "line 3: its content does not match its hash (edited)" in answer.said
    assert verify(path) == ["line 3: its content does not match its hash (edited)"]


def test_a_removed_line_is_found(logged):
    config, path = logged
    lines = path.read_text().splitlines()
    _rewrite(path, lines[:1] + lines[2:])  # the decision is gone
    assert _verify(config).exit_code == 1
    assert verify(path)[0] == "line 2: seq 2, expected 1 (removed or reordered)"


def test_swapped_lines_are_found(logged):
    config, path = logged
    lines = path.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(path, lines)
    assert _verify(config).exit_code == 1
    assert "line 3: does not follow the line before it (removed or reordered)" in verify(path)


def test_a_line_cut_from_the_end_is_found_by_the_head(logged):
    config, path = logged
    _rewrite(path, path.read_text().splitlines()[:-1])
    assert _verify(config).exit_code == 1
    assert "lines removed from the end" in verify(path)[0]


def test_a_run_leaves_its_plan_decision_and_each_updates_size_and_hash_in_the_log(tmp_path):
    federation = twin_federation(tmp_path / "ws", parties=2, rounds=2)
    config = load_federation_config(federation.config_path)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, "audited", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    alpha = load_party_config(federation.layout.party_configs["alpha"])
    assert verify(alpha.audit_log) == []
    entries = [e for e in read_entries(alpha.audit_log) if e["run_id"] == "audited"]
    events = [(e["event"], e["detail"].get("kind") or e["detail"].get("verdict")) for e in entries]
    assert events[:2] == [("plan", None), ("decision", "accept")]
    assert entries[0]["detail"]["plan"]["rounds"] == 2
    updates = [e for e in entries if e["detail"].get("kind") == "update"]
    assert [e["round"] for e in updates] == [1, 2]
    assert all(e["detail"]["metrics"] == ["train_loss"] and e["detail"]["bytes"] > 0 for e in updates)
    # the hash in the owner's log is the hash of what the coordinator received
    received = {u.party: u for u in RunCheckpoints(federation.workspace.checkpoints, "audited").load_updates(1)}
    tensors = updates[0]["detail"]["tensors"]
    digest = hashlib.sha256(b"".join(received["alpha"].params[t["name"]].tobytes() for t in tensors)).hexdigest()
    assert updates[0]["detail"]["tensors_sha256"] == digest
    rows = federation.layout.party_data["alpha"].read_text().splitlines()[1:]
    text = alpha.audit_log.read_text()
    assert not any(row in text for row in rows)  # never a row
    shown = CliRunner().invoke(
        party_cli, ["audit", "show", "--config", str(alpha_path(federation)), "--run", "audited"]
    )
    assert shown.exit_code == 0 and "decision" in shown.output


def alpha_path(federation):
    return federation.layout.party_configs["alpha"]


def test_a_head_one_sent_message_behind_verifies_and_two_behind_is_found(tmp_path):
    """A sent entry's head follows after the message goes: a party stopped in between is not a tampered log."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append("plan", "run-1", 0, plan={"rounds": 1})
    log.append("sent", "run-1", 1, head_later=True, kind="update", bytes=10)  # the process stops here
    assert json.loads(path.with_name("audit.jsonl.head").read_text())["seq"] == 0
    assert verify(path) == []

    log.write_head()
    assert json.loads(path.with_name("audit.jsonl.head").read_text())["seq"] == 1
    for round_number in (2, 3):  # two entries past the head: not a stop between one message and its head
        log.append("sent", "run-1", round_number, head_later=True, kind="update", bytes=10)
    assert len(verify(path)) == 1 and "records seq 1" in verify(path)[0]


def test_a_second_writer_of_the_log_is_followed_not_overwritten(tmp_path):
    """The last entry is remembered only while the file has the size this log left it at."""
    path = tmp_path / "audit.jsonl"
    first, second = AuditLog(path), AuditLog(path)
    first.append("plan", "run-1", 0, plan={})
    second.append("decision", "run-1", 0, verdict="accept")
    first.append("sent", "run-1", 1, kind="update", bytes=1)
    assert [e["seq"] for e in read_entries(path)] == [0, 1, 2]
    assert verify(path) == []


@pytest.mark.integration
def test_a_second_agent_on_the_same_audit_log_is_refused_in_one_line_and_the_first_keeps_its_chain(tmp_path):
    layout = prepare_demo(Workspace.at(tmp_path), parties=2, rounds=1)
    config = layout.party_configs["alpha"]
    audit_log = load_party_config(config).audit_log
    command = [sys.executable, "-m", "party_agent", "run", "--config", str(config)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not audit_log.with_name(audit_log.name + ".lock").exists():  # the first agent holds the log
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.1)
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the first agent is still serving
    finally:
        first.terminate()
        first.wait(timeout=60)

    assert second.returncode == 2
    assert "another party agent is running with this audit log" in second.stdout + second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    assert verify(audit_log) == []
