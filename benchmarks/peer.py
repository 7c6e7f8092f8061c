"""Consortia against Flower on one workload, alternating in the same benchmark run.

The workload: scikit-learn digits, 20% held out at the coordinator, the rest split among 5 parties by
Dirichlet(alpha=0.5) label skew; the same MLP (64-32-10 with input standardisation fitted from the
parties' summed statistics), the same initial weights, 20 rounds of FedAvg, 1 local epoch of SGD
(learning rate 0.05, momentum 0.9, batch 32) with the same shuffling seed, the global model scored on
the held-out rows after every round. Both systems read the same party files.

Consortia runs as ``consortia run`` does: the Prefect flow (contracts, MLflow tracking, DVC manifests,
valuation, promotion included) with one ``party-agent`` process per party over CURVE-encrypted ZeroMQ.
Flower runs on its deployment engine: ``flower-superlink`` and one ``flower-supernode`` per party as
local processes (plain HTTP, ``--insecure``), the run submitted with ``flwr run``.

Measured per run: wall time from starting the first process to the final model's score; time per round
(median interval between consecutive round ends); bytes between parties and coordinator, counted by a
TCP relay both systems' parties dial; final held-out accuracy; peak resident memory of the coordinator
(process tree) and of the largest party (process tree).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.flower import FLWR_VERSION, FlowerDeployment, FlowerUnavailable, ensure_flower
from benchmarks.launch import Launched
from benchmarks.memory import PeakMemory
from benchmarks.records import measure_and_record, median, scratch_folder
from benchmarks.relay import CountingRelay
from benchmarks.tables import Goal, TextTable, met
from benchmarks.workspace import LocalFederation, build_federation
from components.core.config import TrainingSpec
from components.run.summary import RunSummary
from flows.demo import free_port

NAME = "peer"
System = Literal["consortia", "flower"]


class PeerSetup(BaseModel):
    parties: int = 5
    rounds: int = 20
    alpha: float = 0.5
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    hidden: list[int] = Field(default_factory=lambda: [32])
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    timeout_s: float = 900.0


class SystemRun(BaseModel):
    system: System
    seed: int
    wall_s: float
    round_s: float
    round_intervals_s: list[float]
    wire_up_bytes: int
    wire_down_bytes: int
    accuracy: float
    coordinator_peak_mb: float
    party_peak_mb: float


class SystemSummary(BaseModel):
    """Medians over the repetitions."""

    system: System
    runs: int
    wall_s: float
    round_s: float
    wire_mb: float
    accuracy: float
    coordinator_peak_mb: float
    party_peak_mb: float


class PeerResult(BaseModel):
    setup: PeerSetup
    flower_version: str
    flower_unavailable: str | None = None
    runs: list[SystemRun]
    summaries: list[SystemSummary]
    ratios: dict[str, float] = Field(description="Consortia / Flower, each a ratio of medians")
    goal_wall_time_met: bool | None = None
    goal_accuracy_met: bool | None = None


def run_consortia(federation: LocalFederation, relay_port: int, setup: PeerSetup, seed: int) -> SystemRun:
    """The Prefect flow in a coordinator process plus one party-agent process per party (dialing the relay)."""
    from flows.processes import PartyProcesses

    timeline = federation.workspace.root / "timeline.json"
    logs = federation.workspace.logs
    coordinator_port = int(federation.layout.bind.rsplit(":", 1)[1])
    with CountingRelay(coordinator_port, port=relay_port) as relay, PeakMemory() as peaks, Launched(logs) as launched:
        launched_at = time.time()
        coordinator = launched.start(
            "coordinator",
            [
                sys.executable,
                "-m",
                "benchmarks.coordinator",
                str(federation.layout.federation_config),
                str(federation.workspace.root),
                str(timeline),
            ],
        )
        peaks.watch("coordinator", coordinator.pid)
        with PartyProcesses(federation.layout.party_configs, logs) as parties:
            for name, process in parties.processes.items():
                peaks.watch(name, process.pid)
            try:
                code: int | None = coordinator.wait(timeout=setup.timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            if code != 0:
                raise RuntimeError(f"Consortia run failed ({code}):\n{launched.log_tail('coordinator')}")
        times = json.loads(timeline.read_text())
        summary = RunSummary.read(Path(times["summary"]))
        party_peak = max(peaks.peak_mb(name) for name in federation.layout.party_configs)
        coordinator_peak = peaks.peak_mb("coordinator")
    if summary.final_metrics is None:
        raise RuntimeError("the Consortia run finished without final metrics")
    return _system_run(
        "consortia",
        seed,
        times["round_ends"],
        times["finished"] - launched_at,
        relay,
        summary.final_metrics.accuracy,
        coordinator_peak,
        party_peak,
    )


def _system_run(
    system: System,
    seed: int,
    round_ends: Sequence[float],
    wall_s: float,
    relay: CountingRelay,
    accuracy: float,
    coordinator_peak_mb: float,
    party_peak_mb: float,
) -> SystemRun:
    """One run's record; time per round is the median interval between consecutive round ends."""
    intervals = [later - earlier for earlier, later in zip(round_ends, round_ends[1:], strict=False)]
    return SystemRun(
        system=system,
        seed=seed,
        wall_s=wall_s,
        round_s=median(intervals),
        round_intervals_s=intervals,
        wire_up_bytes=relay.upstream,
        wire_down_bytes=relay.downstream,
        accuracy=accuracy,
        coordinator_peak_mb=coordinator_peak_mb,
        party_peak_mb=party_peak_mb,
    )


def run_flower(federation: LocalFederation, setup: PeerSetup, seed: int, bin_dir: Path, home: Path) -> SystemRun:
    """SuperLink + SuperNodes (dialing the relay) as local processes, then ``flwr run`` of benchmarks/flower_app."""
    result_file = home / "result.json"
    run_config = {
        "num-rounds": setup.rounds,
        "parties": setup.parties,
        "seed": seed,
        "hidden": ",".join(str(h) for h in setup.hidden),
        "target": federation.target,
        "local-epochs": setup.training.local_epochs,
        "batch-size": setup.training.batch_size,
        "learning-rate": setup.training.learning_rate,
        "momentum": setup.training.momentum,
        "holdout": str(federation.layout.holdout),
        "result": str(result_file),
    }
    superlink_port = free_port()
    relay = CountingRelay(superlink_port)
    deployment = FlowerDeployment(
        bin_dir, home, federation.layout.party_data, port=superlink_port, fleet_port=relay.port
    )
    with relay, PeakMemory() as peaks, deployment:
        launched_at = time.time()
        deployment.start()
        for name, pid in deployment.pids().items():
            peaks.watch(name, pid)
        deployment.submit(run_config)
        result = deployment.wait_for_result(result_file, setup.timeout_s)
        party_peak = max(peaks.peak_mb(f"supernode-{name}") for name in federation.layout.party_data)
        coordinator_peak = peaks.peak_mb("superlink")
    return _system_run(
        "flower",
        seed,
        result["round_ends"],  # the first is the initial evaluation, just before round 1
        result["finished"] - launched_at,
        relay,
        result["scores"][-1]["accuracy"],
        coordinator_peak,
        party_peak,
    )


def summarise(system: System, runs: list[SystemRun]) -> SystemSummary:
    return SystemSummary(
        system=system,
        runs=len(runs),
        wall_s=median([r.wall_s for r in runs]),
        round_s=median([r.round_s for r in runs]),
        wire_mb=median([(r.wire_up_bytes + r.wire_down_bytes) / 1e6 for r in runs]),
        accuracy=median([r.accuracy for r in runs]),
        coordinator_peak_mb=median([r.coordinator_peak_mb for r in runs]),
        party_peak_mb=median([r.party_peak_mb for r in runs]),
    )


def run(setup: PeerSetup, scratch: Path, console: Console) -> PeerResult:
    """For each seed both systems, alternating which goes first."""
    try:
        bin_dir: Path | None = ensure_flower()
        unavailable = None
    except (FlowerUnavailable, OSError) as error:
        bin_dir, unavailable = None, str(error)
        console.print(f"[yellow]Flower unavailable, running Consortia alone:[/yellow] {error}")
    runs: list[SystemRun] = []
    for index, seed in enumerate(setup.seeds):
        systems: list[System] = ["consortia", "flower"] if index % 2 == 0 else ["flower", "consortia"]
        for system in systems:
            if system == "flower" and bin_dir is None:
                continue
            relay_port = free_port()
            root = scratch / f"{system}-seed{seed}"
            federation = build_federation(
                root,
                setup.parties,
                setup.rounds,
                seed,
                setup.hidden,
                alpha=setup.alpha,
                party_address=f"tcp://127.0.0.1:{relay_port}",
            )
            if system == "consortia":
                outcome = run_consortia(federation, relay_port, setup, seed)
            else:
                assert bin_dir is not None
                outcome = run_flower(federation, setup, seed, bin_dir, root / "flower")
            runs.append(outcome)
            console.print(
                f"  seed {seed} {system}: wall {outcome.wall_s:.1f} s, round {outcome.round_s:.2f} s, "
                f"accuracy {outcome.accuracy:.3f}"
            )
    return compare(setup, runs, unavailable)


RATIOS = ("wall_s", "round_s", "wire_mb", "accuracy", "coordinator_peak_mb", "party_peak_mb")


def compare(setup: PeerSetup, runs: list[SystemRun], unavailable: str | None = None) -> PeerResult:
    """Medians per system and, when both ran, the Consortia / Flower ratio of each median and the goals."""
    systems: tuple[System, ...] = ("consortia", "flower")
    summaries = [summarise(s, [r for r in runs if r.system == s]) for s in systems if any(r.system == s for r in runs)]
    result = PeerResult(
        setup=setup,
        flower_version=FLWR_VERSION,
        flower_unavailable=unavailable,
        runs=runs,
        summaries=summaries,
        ratios={},
    )
    if len(summaries) == 2:
        ours, theirs = summaries
        result.ratios = {name: getattr(ours, name) / getattr(theirs, name) for name in RATIOS}
        result.goal_wall_time_met = ours.wall_s <= theirs.wall_s
        result.goal_accuracy_met = ours.accuracy >= theirs.accuracy
    return result


def tables(result: PeerResult) -> list[TextTable]:
    setup = result.setup
    title = (
        f"Consortia vs Flower {result.flower_version}: digits, {setup.parties} parties, Dirichlet alpha={setup.alpha}, "
        f"{setup.rounds} rounds, medians of {len(setup.seeds)} runs each (seeds {', '.join(map(str, setup.seeds))})"
    )
    table = TextTable(
        title,
        [
            "system",
            "wall time (s)",
            "time per round (s)",
            "bytes on the wire (MB)",
            "final accuracy",
            "coordinator peak (MB)",
            "largest party peak (MB)",
        ],
    )
    for summary in result.summaries:
        table.add(
            summary.system.capitalize(),
            f"{summary.wall_s:.1f}",
            f"{summary.round_s:.3f}",
            f"{summary.wire_mb:.2f}",
            f"{summary.accuracy:.4f}",
            f"{summary.coordinator_peak_mb:.0f}",
            f"{summary.party_peak_mb:.0f}",
        )
    if result.ratios:
        r = result.ratios
        table.add(
            "Consortia / Flower",
            f"{r['wall_s']:.2f}",
            f"{r['round_s']:.2f}",
            f"{r['wire_mb']:.2f}",
            f"{r['accuracy']:.3f}",
            f"{r['coordinator_peak_mb']:.2f}",
            f"{r['party_peak_mb']:.2f}",
        )
        table.notes.append(
            f"Goal: wall time at most Flower's: {met(result.goal_wall_time_met)}; "
            f"accuracy at least Flower's: {met(result.goal_accuracy_met)}."
        )
    if result.flower_unavailable:
        table.notes.append(f"Flower could not run here: {result.flower_unavailable}")
    table.notes += [
        "Wall time: from starting the first process to the end of the run (Consortia: after valuation, "
        "promotion, MLflow and DVC records; Flower: after the last round's evaluation).",
        "Time per round: median interval between consecutive round ends (training, aggregation, held-out "
        "evaluation and, for Consortia, the Prefect tasks, checkpoint and MLflow metrics of the round).",
        "Bytes on the wire: TCP payload between the parties and the coordinator (SuperLink), both directions, "
        "counted by a relay; Consortia's is CURVE-encrypted ZeroMQ, Flower's plain HTTP (--insecure).",
        "Peak memory: largest sum of resident set sizes over a process and its children, sampled every 0.2 s "
        "(Flower's SuperLink includes its ServerApp process; a SuperNode its ClientApp processes; Consortia's "
        "coordinator the Prefect flow's process and any it starts).",
        "Both run the default deployment: a Consortia party is one long-lived party-agent process; a Flower "
        "SuperNode (default subprocess isolation) starts a new flwr-clientapp process for every message it "
        "receives, which loads the ClientApp, torch included, before it trains.",
    ]
    runs = TextTable(
        "Every run of the peer comparison, in the order they ran",
        ["system", "seed", "wall time (s)", "time per round (s)", "wire up (kB)", "wire down (kB)", "accuracy"],
    )
    for one in result.runs:
        runs.add(
            one.system.capitalize(),
            one.seed,
            f"{one.wall_s:.1f}",
            f"{one.round_s:.3f}",
            f"{one.wire_up_bytes / 1e3:.1f}",
            f"{one.wire_down_bytes / 1e3:.1f}",
            f"{one.accuracy:.4f}",
        )
    return [table, runs]


def goals(result: PeerResult) -> list[Goal]:
    goal = "Peer workload: end-to-end wall time at most Flower's, with equal or better final accuracy"
    by_system = {s.system: s for s in result.summaries}
    if "flower" not in by_system:
        return [Goal(goal, result.flower_unavailable or "Flower did not run", met(None))]
    ours, theirs = by_system["consortia"], by_system["flower"]
    measured = (
        f"wall {ours.wall_s:.1f} s vs {theirs.wall_s:.1f} s (ratio {result.ratios['wall_s']:.2f}, "
        f"{met(result.goal_wall_time_met)}); accuracy {ours.accuracy:.4f} vs {theirs.accuracy:.4f} "
        f"({met(result.goal_accuracy_met)})"
    )
    return [Goal(goal, measured, met(bool(result.goal_wall_time_met and result.goal_accuracy_met)))]


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks peer", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, one seed; prints, writes no result")
    parser.add_argument("--keep", type=Path, help="keep every workspace and log in this folder")
    args = parser.parse_args(arguments)
    console = Console()
    setup = PeerSetup(rounds=3, seeds=[0]) if args.quick else PeerSetup()
    with scratch_folder(args.keep, "consortia-peer-") as scratch:
        return measure_and_record(NAME, arguments, lambda: run(setup, scratch, console), tables, console, args.quick)
