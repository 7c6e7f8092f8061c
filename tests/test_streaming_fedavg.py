"""Streaming FedAvg: updates folded into one running sum as they arrive give today's FedAvg, and are not kept."""

from __future__ import annotations

import numpy as np
import pytest

from components.adapters.checkpoints import RunCheckpoints
from components.core.config import load_federation_config
from components.core.kernels import RunningMean, weighted_mean
from components.core.strategies import ClientUpdate, build_strategy
from components.core.strategies.base import Streaming
from components.run.coordinator import Coordinator
from components.run.federation import FederationRun
from flows.federation import PLAIN_STEPS, drive
from tests.run_twins import twin_federation, twin_parties


def test_a_running_mean_by_hand():
    running = RunningMean()
    running.add({"w": np.array([1.0, 2.0], dtype=np.float32)}, 1)
    running.add({"w": np.array([4.0, 8.0], dtype=np.float32)}, 2)
    assert running.total_weight == 3
    np.testing.assert_array_equal(running.result()["w"], np.array([3.0, 6.0], dtype=np.float32))


def test_a_running_mean_of_many_updates_equals_the_weighted_mean_of_them_all():
    rng = np.random.default_rng(0)
    updates = [
        {"w": rng.normal(size=(70_000,)).astype(np.float32), "b": rng.normal(size=(3, 5)).astype(np.float32)}
        for _ in range(60)
    ]
    weights = rng.integers(1, 500, size=len(updates)).tolist()
    running = RunningMean()
    for update, weight in zip(updates, weights, strict=True):
        running.add(update, weight)
    expected = weighted_mean(updates, weights)
    for name in expected:
        assert running.result()[name].dtype == np.float32
        np.testing.assert_allclose(running.result()[name], expected[name], rtol=1e-5, atol=1e-6)


def test_fedavg_and_fedprox_stream_robust_rules_and_wrappers_do_not():
    assert isinstance(build_strategy("fedavg"), Streaming)
    assert isinstance(build_strategy("fedprox"), Streaming)
    for name, options in [("median", {}), ("trimmed_mean", {"beta": 0.1}), ("clipping", {"max_norm": 1.0})]:
        assert not isinstance(build_strategy(name, **options), Streaming)
    update = ClientUpdate("a", {"w": np.array([2.0], dtype=np.float32)}, 4)
    streamed = build_strategy("fedavg").running()
    streamed.add(update.params, update.num_examples)
    np.testing.assert_array_equal(streamed.result()["w"], build_strategy("fedavg").aggregate(1, {}, [update])["w"])


def _run(tmp_path, name: str, monkeypatch, **overrides):
    """A 3-party, 2-round run over twins; the TRAIN exchanges' replies, as the rounds got them."""
    federation = twin_federation(tmp_path / name, parties=3, rounds=2, **overrides)
    config = load_federation_config(federation.config_path)
    seen = []
    exchange = Coordinator.exchange

    def recording(self, parties, kind, *args, **kwargs):
        result = exchange(self, parties, kind, *args, **kwargs)
        if kind.value == "train":
            seen.append(result)
        return result

    monkeypatch.setattr(Coordinator, "exchange", recording)
    with twin_parties(federation):
        run = FederationRun(config, federation.workspace, f"{name}-run", edges=federation.edges)
        drive(run, PLAIN_STEPS)
    monkeypatch.setattr(Coordinator, "exchange", exchange)
    return run, RunCheckpoints(federation.workspace.checkpoints, f"{name}-run"), seen


@pytest.mark.parametrize("strategy", ["fedavg", "fedprox"])
def test_a_run_that_keeps_no_updates_streams_them_and_trains_the_same_model(tmp_path, monkeypatch, strategy):
    chosen = {"strategy": {"name": strategy}}
    kept_run, kept, kept_seen = _run(tmp_path, "kept", monkeypatch, **chosen)
    streamed_run, streamed, streamed_seen = _run(tmp_path, "streamed", monkeypatch, party_updates="none", **chosen)
    assert streamed_run.rounds.streams() and not kept_run.rounds.streams()
    assert streamed_run.summary.status == kept_run.summary.status == "completed"
    # the streamed rounds' replies carry no tensors: each update went into the running sum and was let go
    assert [sorted(e.replies) for e in streamed_seen] == [["alpha", "beta", "gamma"]] * 2
    assert all(reply.tensors == {} for e in streamed_seen for reply in e.replies.values())
    assert all(reply.tensors for e in kept_seen for reply in e.replies.values())
    for round_number in (1, 2):
        expected, got = kept.load_global(round_number), streamed.load_global(round_number)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-6)
    assert not (streamed.folder / "updates").exists()  # nothing per party was written either
    assert streamed_run.summary.contributions == {}
    assert streamed_run.summary.valuation_method.startswith("none: party_updates is 'none'")


def test_a_capped_party_weight_needs_every_weight_first_so_the_round_keeps_its_updates(tmp_path, monkeypatch):
    run, _, seen = _run(tmp_path, "capped", monkeypatch, party_updates="none", max_party_weight=0.5)
    assert not run.rounds.streams()
    assert run.summary.status == "completed"
    assert all(reply.tensors for e in seen for reply in e.replies.values())
