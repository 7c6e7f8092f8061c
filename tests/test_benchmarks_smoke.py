"""The benchmark package imports, measures tiny workloads through the real code, and reports what it measured.

No full benchmark runs here (those are run on purpose: ``make bench``), Flower is never installed or started,
and no assertion depends on how fast this machine is: only that figures are positive and ratios sane.
"""

from __future__ import annotations

import importlib
import io
import json
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchmarks import aggregation, peer, report, transport
from benchmarks.aggregation import AggregationResult, AggregationSetup, Bandwidth, FedAvgRow
from benchmarks.machine import machine_facts
from benchmarks.models import parameter_count, spec_for
from benchmarks.overhead import parties_that_fit
from benchmarks.records import Record, write_record
from benchmarks.relay import CountingRelay
from benchmarks.transport import Measurement, TransportSetup, compare

QUIET = Console(file=io.StringIO())


@pytest.mark.parametrize(
    "name", ["peer", "overhead", "startup", "transport", "aggregation", "report", "flower", "coordinator"]
)
def test_benchmark_modules_import(name: str) -> None:
    assert importlib.import_module(f"benchmarks.{name}").__doc__


@pytest.mark.parametrize("size, parameters", [("10K", 10_000), ("1M", 1_000_000)])
def test_model_sizes_are_close_to_their_names(size: str, parameters: int) -> None:
    count = parameter_count(spec_for(parameters))

    assert abs(count - parameters) / parameters < 0.02, size


def test_a_tiny_transport_run_writes_a_record_with_sane_ratios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = TransportSetup(sizes={"10K": 10_000}, runs=1, target_bytes=2 << 20)  # 25 exchanges of 40 kB per way
    monkeypatch.setattr("benchmarks.records.RESULTS", tmp_path)

    result = transport.run(setup, QUIET)
    path = write_record("transport", "python -m benchmarks transport", result, datetime.now(UTC), 1.0, machine_facts())

    record = Record.model_validate(json.loads(path.read_text()))
    assert sorted(m.way for m in result.measurements) == sorted(transport.WAYS)
    assert [c.encryption for c in result.comparisons] == ["plain", "CURVE"]
    assert all(0 < c.ratio < 20 and c.goal_met == (c.ratio >= 0.7) for c in result.comparisons)
    assert record.data["comparisons"][0]["size"] == "10K"
    assert "| Protocol throughput at least 70% of raw pyzmq | 10K plain " in report.render(tmp_path)


def test_a_tiny_aggregation_run_gives_a_share_of_the_measured_bandwidth() -> None:
    setup = AggregationSetup(update_parameters=[10_000], update_counts=[10], runs=1, repeats=1, stream_bytes=4 << 20)

    result = aggregation.run(setup, QUIET)

    (row,) = result.rows
    assert result.add_gb_s > 0 and row.median_gb_s > 0
    assert 0 < row.share_of_bandwidth < 20
    assert row.share_of_bandwidth == pytest.approx(row.median_gb_s / result.add_gb_s)


def peer_run(system: peer.System, seed: int, wall_s: float, accuracy: float, peak_mb: float = 400.0) -> peer.SystemRun:
    return peer.SystemRun(
        system=system,
        seed=seed,
        wall_s=wall_s,
        first_round_s=wall_s / 2,
        round_s=wall_s / 20,
        round_intervals_s=[wall_s / 20],
        wire_up_bytes=1_000_000,
        wire_down_bytes=1_000_000,
        accuracy=accuracy,
        coordinator_peak_mb=peak_mb,
        party_peak_mb=200.0,
    )


def test_peer_goals_compare_medians_of_warm_and_cold_consortia_with_flowers_simulation() -> None:
    runs = [
        peer_run("consortia_cold", 0, 50.0, 0.95),
        peer_run("consortia_warm", 0, 20.0, 0.95),
        peer_run("flower_sim_cold", 0, 20.0, 0.94),
        peer_run("flower_sim_cold", 1, 40.0, 0.96),
        peer_run("consortia_warm", 1, 60.0, 0.95),
        peer_run("consortia_cold", 1, 40.0, 0.97),
        peer_run("consortia_warm", 2, 30.0, 0.97),
        peer_run("consortia_cold", 2, 45.0, 0.97),
        peer_run("flower_sim_cold", 2, 30.0, 0.95),
        peer_run("flower_subprocess", 0, 300.0, 0.95, peak_mb=350.0),
    ]

    result = peer.compare(peer.PeerSetup(), runs)

    by = {summary.system: summary for summary in result.summaries}
    assert (by["consortia_warm"].wall_s, by["consortia_cold"].wall_s, by["flower_sim_cold"].wall_s) == (30, 45, 30)
    assert result.goals_met == {"warm_wall": True, "accuracy": True, "cold_wall": True, "coordinator_memory": False}
    verdicts = [goal.verdict for goal in peer.goals(result)]
    assert verdicts == ["met", "met", "not met"]  # warm and accuracy, cold within 1.5x (45 <= 45), memory 400 > 350


def test_peer_without_flower_reports_the_goal_as_not_measured() -> None:
    result = peer.compare(peer.PeerSetup(), [peer_run("consortia_warm", 0, 30.0, 0.95)], unavailable="no network")

    (goal,) = peer.goals(result)
    assert (result.goals_met, goal.measured, goal.verdict) == ({}, "no network", "not measured")


def test_comparison_is_the_ratio_of_median_throughputs() -> None:
    def measured(way: transport.Way, seconds: float) -> Measurement:  # 2 x 1 MB x 10 exchanges
        return Measurement(size="1M", way=way, run=0, exchanges=10, payload_bytes=1_000_000, seconds=seconds)

    measurements = [
        measured("protocol", 0.25),
        measured("raw", 0.2),
        measured("consortia", 0.5),
        measured("raw-curve", 0.25),
    ]

    plain, curve = compare(TransportSetup(sizes={"1M": 1_000_000}, runs=1), measurements)

    assert (plain.consortia_mb_s, plain.raw_mb_s, plain.ratio, plain.goal_met) == (80.0, 100.0, 0.8, True)
    assert (curve.consortia_mb_s, curve.raw_mb_s, curve.ratio, curve.goal_met) == (40.0, 80.0, 0.5, False)


def test_relay_counts_the_bytes_each_way() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        connection, _ = server.accept()
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data[:10])  # answers 10 bytes per chunk received

    threading.Thread(target=echo, daemon=True).start()
    with CountingRelay(server.getsockname()[1]) as relay:
        with socket.create_connection(("127.0.0.1", relay.port)) as client:
            client.sendall(b"x" * 100)
            assert client.recv(100) == b"x" * 10
        deadline = time.monotonic() + 5
        while relay.downstream < 10 and time.monotonic() < deadline:
            time.sleep(0.01)

        assert (relay.upstream, relay.downstream) == (100, 10)
    server.close()


def test_report_lists_each_goal_with_its_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = AggregationResult(
        setup=AggregationSetup(update_counts=[10]),
        bandwidth=Bandwidth(add_gb_s=[10.0], copy_gb_s=[12.0]),
        add_gb_s=10.0,
        copy_gb_s=12.0,
        rows=[
            FedAvgRow(
                parameters=2_500_000,
                updates=10,
                update_bytes=10**7,
                gb_s=[4.0],
                median_gb_s=4.0,
                share_of_bandwidth=0.4,
                goal_met=False,
            )
        ],
    )
    monkeypatch.setattr("benchmarks.records.RESULTS", tmp_path)
    write_record("aggregation", "python -m benchmarks aggregation", result, datetime.now(UTC), 1.0, machine_facts())

    text = report.render(tmp_path)

    assert (
        "| FedAvg at least 50% of the measured memory bandwidth from 1M parameters up | 2.5M x 10 40% | not met |"
        in text
    )
    assert "Command `python -m benchmarks aggregation`" in text
    assert "| 2,500,000 | 10 | 10.0 | 4.00 | 40% | not met |" in text


def test_fewer_parties_run_where_their_memory_would_not_fit() -> None:
    # 100 MB model: coordinator 1024 + (2p + 30) * 100 MB, each party 350 + 5 * 100 MB: 4024 + 1050p <= 8192
    assert parties_that_fit(20, 100 << 20, budget_bytes=8 << 30) == 3
    assert parties_that_fit(20, 0, budget_bytes=8 << 30) == 20


def test_alie_forges_the_honest_mean_minus_z_standard_deviations() -> None:
    from benchmarks.strategies import alie_z, little_is_enough

    honest = [{"w": np.array([0.0, 4.0], dtype=np.float32)}, {"w": np.array([2.0, 4.0], dtype=np.float32)}]
    forged = little_is_enough(honest, z=0.5)
    np.testing.assert_allclose(forged["w"], [1.0 - 0.5 * 1.0, 4.0])  # mean 1, std 1; a constant stays put
    assert forged["w"].dtype == np.float32
    assert alie_z(10, 2) == pytest.approx(0.2533, abs=1e-4)  # s = 10 // 2 + 1 - 2 = 4, Phi^-1(6 / 10)
