"""Pure rules of the core: promotion gate, liveness, party selection, config validation."""

from pathlib import Path

import pytest

from components.core.config import load_federation_config
from components.core.errors import ConfigError, PartyUnavailable, QuorumNotReached, UpdateRejected, is_retryable
from components.core.gates import champion_gate
from components.core.liveness import Liveness, PartyStatus
from components.core.selection import largest_first, select_parties


def test_gate_promotes_without_champion():
    decision = champion_gate("accuracy", 0.9, None)
    assert decision.passed and "no current champion" in decision.reason


def test_gate_keeps_champion_unless_strictly_better():
    assert not champion_gate("accuracy", 0.95, 0.95).passed
    assert champion_gate("accuracy", 0.96, 0.95).passed
    assert not champion_gate("accuracy", 0.96, 0.95, min_improvement=0.02).passed
    assert champion_gate("loss", 0.10, 0.20, higher_is_better=False).passed
    assert "champion kept" in champion_gate("loss", 0.30, 0.20, higher_is_better=False).reason


def test_liveness_busy_party_with_heartbeats_stays_alive():
    live = Liveness(timeout_s=10)
    assert live.status("a", now=0) is PartyStatus.UNKNOWN
    live.observe("a", now=0, busy=True)
    for t in range(5, 100, 5):  # long local training, heartbeats every 5 s
        live.observe("a", now=t, busy=True)
        assert live.status("a", now=t + 4) is PartyStatus.BUSY
    assert live.status("a", now=95 + 10.5) is PartyStatus.OFFLINE
    live.observe("a", now=200)
    assert live.alive(["a", "b"], now=201) == ["a"]
    live.leave("a")
    assert live.status("a", now=201) is PartyStatus.OFFLINE


def test_selection_all_when_fraction_is_one():
    assert select_parties(["c", "a", "b"], 1.0, 1, {}, seed=0, round_number=1) == ["a", "b", "c"]


def test_selection_is_seeded_sized_and_prefers_reputation():
    online = [f"p{i}" for i in range(10)]
    reputation = {p: (1.0 if p in ("p0", "p1") else 0.0) for p in online}
    picks = [select_parties(online, 0.2, 1, reputation, seed=3, round_number=r) for r in range(200)]
    assert all(len(p) == 2 for p in picks)
    assert picks[7] == select_parties(online, 0.2, 1, reputation, seed=3, round_number=7)
    reliable = sum(p.count("p0") + p.count("p1") for p in picks)
    assert reliable > 200  # weights 1.05 vs 0.05: reliable parties fill most seats


def test_error_tree_decides_retries():
    assert is_retryable(PartyUnavailable("x")) and is_retryable(QuorumNotReached("x"))
    assert not is_retryable(UpdateRejected("x")) and not is_retryable(ConfigError("x"))


def test_config_errors_are_clear(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_federation_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncontract: {name: breast_cancer}\nrounds: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_federation_config(bad)
    message = str(caught.value)
    assert "rounds" in message and "coordinator" in message and "parties" in message


def test_requests_go_to_the_party_with_the_most_rows_first():
    rows = {"alpha": 120, "beta": 480, "gamma": 120, "delta": 300}
    assert largest_first(["alpha", "beta", "gamma", "delta"], rows) == ["beta", "delta", "alpha", "gamma"]
    assert largest_first(["zeta", "alpha"], rows) == ["alpha", "zeta"]  # a party with no rows known goes last
