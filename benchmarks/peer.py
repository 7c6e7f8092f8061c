"""Consortia against Flower at its best and at its defaults on one workload, alternating in the same benchmark run.

The workload: scikit-learn digits, 20% held out at the coordinator, the rest split among 5 parties by
Dirichlet(alpha=0.5) label skew; the same MLP (64-32-10 with input standardisation fitted from the
parties' summed statistics), the same initial weights, 20 rounds of FedAvg, 1 local epoch of SGD
(learning rate 0.05, momentum 0.9, batch 32) with the same shuffling seed, the global model scored on
the held-out rows after every round. Every system reads the same party files.

Consortia runs as ``consortia run`` does: the Prefect flow (contracts, MLflow tracking, DVC manifests,
valuation, promotion included) with one ``party-agent`` process per party over CURVE-encrypted ZeroMQ.
Cold: a new workspace, party agents and coordinator started from nothing (the coordinator starts the
workspace's Prefect server); each data owner has checked their data with ``party-agent check`` first (step 2 of
the data owner's guide, before the clock starts), which the agent reuses. Cold, validating at start: the same
from data nobody checked, so every agent runs Great Expectations as it starts. Warm: the next run in that
workspace, as data owners run party agents (long-lived, already running) and with the workspace's Prefect server up.

Flower 1.41, in three settings: its simulation engine (``flwr run`` on a local SuperLink in simulation
mode, Ray, 5 virtual SuperNodes, ClientApps in Ray actors of one CPU each on two Ray CPUs; cold starts the
SuperLink, warm is the next ``flwr run`` on it); its deployment engine with process isolation (a
``flower-superexec`` next to the SuperLink and each SuperNode); its deployment engine in the default
subprocess isolation. Deployments are local processes on plain HTTP (``--insecure``), submitted with ``flwr run``.

Measured per run: wall time from starting the first process to the final model's score; time to the end of
round 1; time per round (median interval between consecutive round ends); bytes between parties and
coordinator, counted by a TCP relay the parties dial (not for the simulation, which has no network); final
held-out accuracy; peak resident memory of the coordinator (process tree), of the workspace's Prefect
server (Consortia) and of the largest party (process tree).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.flower import (
    FLWR_VERSION,
    FlowerDeployment,
    FlowerSimulation,
    FlowerUnavailable,
    Isolation,
    ensure_flower,
)
from benchmarks.launch import Launched
from benchmarks.memory import PeakMemory
from benchmarks.records import measure_and_record, median, scratch_folder
from benchmarks.relay import CountingRelay
from benchmarks.tables import Goal, TextTable, met
from benchmarks.workspace import LocalFederation, build_federation
from components.adapters.prefect_server import SERVER_MARK
from components.core.config import TrainingSpec
from components.run.summary import RunSummary
from flows.demo import free_port

NAME = "peer"
System = Literal[
    "consortia_cold",
    "consortia_cold_validating",
    "consortia_warm",
    "flower_sim_cold",
    "flower_sim_warm",
    "flower_process",
    "flower_subprocess",
]
LABELS: dict[str, str] = {
    "consortia_cold": "Consortia, cold (new workspace, data checked beforehand)",
    "consortia_cold_validating": "Consortia, cold (new workspace, parties validating at start)",
    "consortia_warm": "Consortia, warm (next run in the workspace)",
    "flower_sim_cold": "Flower simulation, cold (SuperLink started)",
    "flower_sim_warm": "Flower simulation, warm (next flwr run)",
    "flower_process": "Flower deployment, process isolation",
    "flower_subprocess": "Flower deployment, subprocess isolation (default)",
}
PREFECT = "prefect server"
GROUPS = ("consortia", "flower_sim", "consortia_validating", "flower_process", "flower_subprocess")
SIMULATION_SIZE = {"num-supernodes": 5, "client-resources-num-cpus": 1, "init-args-num-cpus": 2}


class PeerSetup(BaseModel):
    parties: int = 5
    rounds: int = 20
    alpha: float = 0.5
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    deployment_seeds: list[int] = Field(
        default_factory=lambda: [0], description="Flower's deployment engine takes many minutes a run: one run"
    )
    process_seeds: list[int] = Field(default_factory=lambda: [0], description="its process isolation: one run")
    hidden: list[int] = Field(default_factory=lambda: [32])
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    simulation: dict[str, int] = Field(default_factory=lambda: dict(SIMULATION_SIZE))
    groups: list[str] = Field(default_factory=lambda: list(GROUPS))
    timeout_s: float = 2400.0


class SystemRun(BaseModel):
    system: System
    seed: int
    wall_s: float
    first_round_s: float
    round_s: float
    round_intervals_s: list[float]
    wire_up_bytes: int | None
    wire_down_bytes: int | None
    accuracy: float
    coordinator_peak_mb: float
    prefect_server_peak_mb: float | None = None
    party_peak_mb: float | None


class SystemSummary(BaseModel):
    """Medians over the repetitions."""

    system: System
    runs: int
    wall_s: float
    first_round_s: float
    round_s: float
    wire_mb: float | None
    accuracy: float
    coordinator_peak_mb: float
    prefect_server_peak_mb: float | None
    party_peak_mb: float | None


class PeerResult(BaseModel):
    setup: PeerSetup
    flower_version: str
    flower_unavailable: str | None = None
    runs: list[SystemRun]
    summaries: list[SystemSummary]
    goals_met: dict[str, bool] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list, description="runs that failed or timed out, not in the medians")
    notes: list[str] = Field(default_factory=list, description="how this result departs from one whole run")


class _ServerMark:
    """Picks the workspace's Prefect server out of a process tree (its environment names the workspace)."""

    def __init__(self) -> None:
        self.known: dict[int, bool] = {}

    def __call__(self, process: psutil.Process) -> bool:
        if process.pid not in self.known:
            try:
                self.known[process.pid] = SERVER_MARK in process.environ()
            except psutil.Error:
                return False
        return self.known[process.pid]


def run_consortia(
    federation: LocalFederation, relay_port: int, setup: PeerSetup, seed: int, checked: bool = True
) -> list[SystemRun]:
    """Cold: party agents and the coordinator from nothing in a new workspace, the data checked beforehand (or,
    not ``checked``, validated by each agent as it starts: then the cold run alone); warm: a second coordinator
    run in the same workspace, party agents still running and the workspace's Prefect server up."""
    from flows.processes import PartyProcesses

    if checked:
        check_parties(federation)
    logs = federation.workspace.logs
    coordinator_port = int(federation.layout.bind.rsplit(":", 1)[1])
    runs = []
    server = federation.workspace.prefect_server()
    parties = PartyProcesses(federation.layout.party_configs, logs)
    try:
        with CountingRelay(coordinator_port, port=relay_port) as relay, Launched(logs) as launched:
            with PeakMemory() as peaks:
                launched_at = time.time()
                coordinator = _start_coordinator(launched, federation, "cold")
                peaks.watch("coordinator", coordinator.pid, aside=(_ServerMark(), PREFECT))
                parties.__enter__()  # stopped below, after the warm run (or a failure)
                for name, process in parties.processes.items():
                    peaks.watch(name, process.pid)
                cold: System = "consortia_cold" if checked else "consortia_cold_validating"
                runs.append(_consortia_run(cold, seed, launched, federation, relay, peaks, launched_at))
            if not checked:
                return runs
            relay.reset()  # the warm run's bytes only
            with PeakMemory() as peaks:
                if (record := server.record()) is None:
                    raise RuntimeError("the cold run left no workspace Prefect server")
                peaks.watch(PREFECT, record.pid)
                for name, process in parties.processes.items():
                    peaks.watch(name, process.pid)
                launched_at = time.time()
                coordinator = _start_coordinator(launched, federation, "warm")
                peaks.watch("coordinator", coordinator.pid)
                runs.append(_consortia_run("consortia_warm", seed, launched, federation, relay, peaks, launched_at))
    finally:
        parties.stop()
        server.stop()
    return runs


def check_parties(federation: LocalFederation) -> None:
    """Each data owner's ``party-agent check`` (the guide's step 2), which signs off the summary the agent reuses."""
    for name, config in federation.layout.party_configs.items():
        checked = subprocess.run(
            [sys.executable, "-m", "party_agent", "check", "--config", str(config)], capture_output=True, text=True
        )
        if checked.returncode != 0:
            output = checked.stdout[-1000:] + checked.stderr[-1000:]
            raise RuntimeError(f"party-agent check failed for {name}:\n{output}")


def _start_coordinator(launched: Launched, federation: LocalFederation, name: str) -> subprocess.Popen[bytes]:
    timeline = federation.workspace.root / f"timeline-{name}.json"
    argv = [sys.executable, "-m", "benchmarks.coordinator", str(federation.layout.federation_config)]
    return launched.start(f"coordinator-{name}", [*argv, str(federation.workspace.root), str(timeline)])


def _consortia_run(
    system: System,
    seed: int,
    launched: Launched,
    federation: LocalFederation,
    relay: CountingRelay,
    peaks: PeakMemory,
    launched_at: float,
    timeout_s: float = 900.0,
) -> SystemRun:
    name = system.removeprefix("consortia_").removesuffix("_validating")
    coordinator = launched.processes[f"coordinator-{name}"]
    try:
        code: int | None = coordinator.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        code = None
    if code != 0:
        raise RuntimeError(f"Consortia run failed ({code}):\n{launched.log_tail(f'coordinator-{name}')}")
    times = json.loads((federation.workspace.root / f"timeline-{name}.json").read_text())
    summary = RunSummary.read(Path(times["summary"]))
    if summary.final_metrics is None or summary.final_metrics.accuracy is None:
        raise RuntimeError("the Consortia run finished without final metrics")
    return _system_run(
        system,
        seed,
        times["round_ends"],
        launched_at,
        times["finished"],
        relay,
        summary.final_metrics.accuracy,
        peaks.peak_mb("coordinator"),
        max(peaks.peak_mb(name) for name in federation.layout.party_configs),
        prefect_server_peak_mb=peaks.peak_mb(PREFECT),
    )


def _system_run(
    system: System,
    seed: int,
    round_ends: Sequence[float],
    launched_at: float,
    finished: float,
    relay: CountingRelay | None,
    accuracy: float,
    coordinator_peak_mb: float,
    party_peak_mb: float | None,
    prefect_server_peak_mb: float | None = None,
) -> SystemRun:
    """One run's record; time per round is the median interval between consecutive round ends."""
    intervals = [later - earlier for earlier, later in zip(round_ends, round_ends[1:], strict=False)]
    return SystemRun(
        system=system,
        seed=seed,
        wall_s=finished - launched_at,
        first_round_s=round_ends[0] - launched_at,
        round_s=median(intervals),
        round_intervals_s=intervals,
        wire_up_bytes=relay.upstream if relay else None,
        wire_down_bytes=relay.downstream if relay else None,
        accuracy=accuracy,
        coordinator_peak_mb=coordinator_peak_mb,
        prefect_server_peak_mb=prefect_server_peak_mb,
        party_peak_mb=party_peak_mb,
    )


def flower_run_config(federation: LocalFederation, setup: PeerSetup, seed: int, result: Path) -> dict[str, Any]:
    return {
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
        "result": str(result),
        "party-data": ",".join(str(path) for path in federation.layout.party_data.values()),
    }


def run_flower_deployment(
    federation: LocalFederation, setup: PeerSetup, seed: int, bin_dir: Path, home: Path, isolation: Isolation
) -> SystemRun:
    """SuperLink + SuperNodes (dialing the relay) as local processes, then ``flwr run`` of benchmarks/flower_app."""
    result_file = home / "result.json"
    superlink_port = free_port()
    relay = CountingRelay(superlink_port)
    deployment = FlowerDeployment(
        bin_dir, home, federation.layout.party_data, port=superlink_port, fleet_port=relay.port, isolation=isolation
    )
    with relay, PeakMemory() as peaks, deployment:
        launched_at = time.time()
        deployment.start()
        for name, pid in deployment.coordinator_pids().items():
            peaks.watch(name, pid)
        for party in federation.layout.party_data:
            for name, pid in deployment.party_pids(party).items():
                peaks.watch(name, pid)
        deployment.submit(flower_run_config(federation, setup, seed, result_file))
        result = deployment.wait_for_result(result_file, setup.timeout_s)
        coordinator_peak = sum(peaks.peak_mb(name) for name in deployment.coordinator_pids())
        party_peak = max(
            sum(peaks.peak_mb(name) for name in deployment.party_pids(party)) for party in federation.layout.party_data
        )
    return _flower_run(f"flower_{isolation}", seed, result, launched_at, relay, coordinator_peak, party_peak)


def run_flower_simulation(
    federation: LocalFederation, setup: PeerSetup, seed: int, bin_dir: Path, home: Path
) -> list[SystemRun]:
    """Cold: the local simulation SuperLink started, then ``flwr run``; warm: the next ``flwr run`` on it."""
    runs = []
    with FlowerSimulation(bin_dir, home, setup.simulation) as simulation:
        for system in ("flower_sim_cold", "flower_sim_warm"):
            result_file = home / f"result-{system}.json"
            with PeakMemory() as peaks:
                launched_at = time.time()
                if system == "flower_sim_cold":
                    simulation.start()
                peaks.watch("superlink", simulation.superlink_pid())
                simulation.submit(flower_run_config(federation, setup, seed, result_file))
                result = simulation.wait_for_result(result_file, setup.timeout_s)
                time.sleep(1.0)  # the run's flwr-simulation process (Ray included) is still winding down
                peak = peaks.peak_mb("superlink")
            runs.append(_flower_run(system, seed, result, launched_at, None, peak, None))  # type: ignore[arg-type]
    return runs


def _flower_run(
    system: System,
    seed: int,
    result: dict[str, Any],
    launched_at: float,
    relay: CountingRelay | None,
    coordinator_peak: float,
    party_peak: float | None,
) -> SystemRun:
    return _system_run(
        system,
        seed,
        result["round_ends"][1:],  # the first is the initial evaluation, just before round 1
        launched_at,
        result["finished"],
        relay,
        result["scores"][-1]["accuracy"],
        coordinator_peak,
        party_peak,
    )


def summarise(system: System, runs: list[SystemRun]) -> SystemSummary:
    def optional(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return median(present) if present else None

    return SystemSummary(
        system=system,
        runs=len(runs),
        wall_s=median([r.wall_s for r in runs]),
        first_round_s=median([r.first_round_s for r in runs]),
        round_s=median([r.round_s for r in runs]),
        wire_mb=optional(
            [
                (r.wire_up_bytes + r.wire_down_bytes) / 1e6
                if r.wire_up_bytes is not None and r.wire_down_bytes is not None
                else None
                for r in runs
            ]
        ),
        accuracy=median([r.accuracy for r in runs]),
        coordinator_peak_mb=median([r.coordinator_peak_mb for r in runs]),
        prefect_server_peak_mb=optional([r.prefect_server_peak_mb for r in runs]),
        party_peak_mb=optional([r.party_peak_mb for r in runs]),
    )


def run(setup: PeerSetup, scratch: Path, console: Console) -> PeerResult:
    """For each seed Consortia and Flower's simulation, alternating which goes first; then Flower's deployments."""
    try:
        bin_dir: Path | None = ensure_flower()
        unavailable = None
    except (FlowerUnavailable, OSError) as error:
        bin_dir, unavailable = None, str(error)
        console.print(f"[yellow]Flower unavailable, running Consortia alone:[/yellow] {error}")
    runs: list[SystemRun] = []
    failures: list[str] = []
    light = [group for group in GROUPS[:2] if group in setup.groups]
    order = [(seed, group) for i, seed in enumerate(setup.seeds) for group in (light if i % 2 == 0 else light[::-1])]
    order += [(seed, "consortia_validating") for seed in setup.seeds if "consortia_validating" in setup.groups]
    order += [(seed, "flower_subprocess") for seed in setup.deployment_seeds if "flower_subprocess" in setup.groups]
    order += [(seed, "flower_process") for seed in setup.process_seeds if "flower_process" in setup.groups]
    for seed, group in order:  # Flower's deployments last: many minutes a run
        if group != "consortia" and bin_dir is None:
            continue
        relay_port = free_port()
        root = scratch / f"{group}-seed{seed}"
        federation = build_federation(
            root,
            setup.parties,
            setup.rounds,
            seed,
            setup.hidden,
            alpha=setup.alpha,
            party_address=f"tcp://127.0.0.1:{relay_port}",
        )
        try:
            outcomes = _run_group(group, federation, relay_port, setup, seed, bin_dir, root)
        except (RuntimeError, TimeoutError, FlowerUnavailable) as error:  # one failed run, not the benchmark
            failures.append(f"{group} seed {seed}: {str(error).splitlines()[0][:300]}")
            console.print(f"[red]{failures[-1]}[/red]")
            continue
        runs += outcomes
        partial = compare(setup, runs, unavailable)
        partial.failures = failures
        (scratch / "peer-partial.json").write_text(partial.model_dump_json(indent=1))  # if it must be cut short
        for outcome in outcomes:
            console.print(
                f"  seed {seed} {LABELS[outcome.system]}: wall {outcome.wall_s:.1f} s, first round "
                f"{outcome.first_round_s:.1f} s, round {outcome.round_s:.3f} s, accuracy {outcome.accuracy:.3f}"
            )
    result = compare(setup, runs, unavailable)
    result.failures = failures
    return result


def _run_group(
    group: str,
    federation: LocalFederation,
    relay_port: int,
    setup: PeerSetup,
    seed: int,
    bin_dir: Path | None,
    root: Path,
) -> list[SystemRun]:
    if group in ("consortia", "consortia_validating"):
        return run_consortia(federation, relay_port, setup, seed, checked=group == "consortia")
    assert bin_dir is not None
    if group == "flower_sim":
        return run_flower_simulation(federation, setup, seed, bin_dir, root / "flower")
    isolation: Isolation = "process" if group == "flower_process" else "subprocess"
    return [run_flower_deployment(federation, setup, seed, bin_dir, root / "flower", isolation)]


def compare(setup: PeerSetup, runs: list[SystemRun], unavailable: str | None = None) -> PeerResult:
    """Medians per system and the goals: warm Consortia no slower than Flower's simulation at equal or better
    accuracy, cold within 1.5x of it, Consortia's coordinator no larger than Flower's SuperLink + ServerApp."""
    systems = [system for system in LABELS if any(r.system == system for r in runs)]
    summaries = [summarise(s, [r for r in runs if r.system == s]) for s in systems]  # type: ignore[arg-type]
    result = PeerResult(
        setup=setup, flower_version=FLWR_VERSION, flower_unavailable=unavailable, runs=runs, summaries=summaries
    )
    by = {summary.system: summary for summary in summaries}
    if {"consortia_warm", "consortia_cold", "flower_sim_cold"} <= set(by):
        flower = by["flower_sim_cold"]
        result.goals_met["warm_wall"] = by["consortia_warm"].wall_s <= flower.wall_s
        result.goals_met["accuracy"] = by["consortia_warm"].accuracy >= flower.accuracy
        result.goals_met["cold_wall"] = by["consortia_cold"].wall_s <= 1.5 * flower.wall_s
    deployments = [by[s] for s in ("flower_process", "flower_subprocess") if s in by]
    if "consortia_cold" in by and deployments:
        smallest = min(summary.coordinator_peak_mb for summary in deployments)
        worst = max(by[s].coordinator_peak_mb for s in ("consortia_cold", "consortia_warm") if s in by)
        result.goals_met["coordinator_memory"] = worst <= smallest
    return result


def merged(parts: list[PeerResult]) -> PeerResult:
    """The runs of several cut-short benchmarks as one result (the first one's setup, all their runs)."""
    setup = parts[0].setup.model_copy(
        update={
            "deployment_seeds": sorted(
                {r.seed for part in parts for r in part.runs if r.system == "flower_subprocess"}
            ),
            "process_seeds": sorted({r.seed for part in parts for r in part.runs if r.system == "flower_process"}),
        }
    )
    result = compare(setup, [run for part in parts for run in part.runs], parts[0].flower_unavailable)
    result.failures = [failure for part in parts for failure in part.failures]
    return result


def _optional(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def tables(result: PeerResult) -> list[TextTable]:
    setup = result.setup
    title = (
        f"Consortia vs Flower {result.flower_version}: digits, {setup.parties} parties, Dirichlet alpha={setup.alpha}, "
        f"{setup.rounds} rounds, medians of the runs (seeds {', '.join(map(str, setup.seeds))}; Flower's deployment "
        f"engine: seeds {', '.join(map(str, setup.deployment_seeds)) or 'none'} in its default isolation, "
        f"{', '.join(map(str, setup.process_seeds)) or 'none'} in process isolation, as its runs take minutes)"
    )
    table = TextTable(
        title,
        [
            "system",
            "runs",
            "wall time (s)",
            "to end of round 1 (s)",
            "time per round (s)",
            "bytes on the wire (MB)",
            "final accuracy",
            "coordinator peak (MB)",
            "Prefect server peak (MB)",
            "largest party peak (MB)",
        ],
    )
    by = {summary.system: summary for summary in result.summaries}
    for summary in result.summaries:
        table.add(
            LABELS[summary.system],
            summary.runs,
            f"{summary.wall_s:.1f}",
            f"{summary.first_round_s:.1f}",
            f"{summary.round_s:.3f}",
            _optional(summary.wire_mb, 2),
            f"{summary.accuracy:.4f}",
            f"{summary.coordinator_peak_mb:.0f}",
            _optional(summary.prefect_server_peak_mb, 0),
            _optional(summary.party_peak_mb, 0),
        )
    pairs = [
        ("consortia_cold", "flower_sim_cold"),
        ("consortia_cold_validating", "flower_sim_cold"),
        ("consortia_warm", "flower_sim_cold"),
        ("consortia_warm", "flower_sim_warm"),  # against Flower's best figure
    ]
    for system, other in pairs:
        if system in by and other in by:
            ours, flower = by[system], by[other]
            table.add(
                f"{_short(system)} / {_short(other)}",
                "",
                f"{ours.wall_s / flower.wall_s:.2f}",
                f"{ours.first_round_s / flower.first_round_s:.2f}",
                f"{ours.round_s / flower.round_s:.2f}",
                "",
                f"{ours.accuracy / flower.accuracy:.3f}",
                "",
                "",
                "",
            )
    goals = result.goals_met
    if goals:
        table.notes.append(
            "Goals against Flower's simulation engine (cold, as `flwr run` starts it): warm wall time at most "
            f"Flower's: {met(goals.get('warm_wall'))}; at equal or better accuracy: {met(goals.get('accuracy'))}; "
            f"cold wall time within 1.5x: {met(goals.get('cold_wall'))}; Consortia's coordinator peak at most "
            f"Flower's SuperLink + ServerApp (deployment): {met(goals.get('coordinator_memory'))}."
        )
    if result.flower_unavailable:
        table.notes.append(f"Flower could not run here: {result.flower_unavailable}")
    table.notes += [f"Failed, not in the medians: {failure}" for failure in result.failures]
    table.notes += result.notes
    table.notes += [
        "Consortia cold: each data owner ran `party-agent check` (the guide's step 2) before the clock started; the "
        "agent reuses that signed-off summary. Cold, validating at start: from unchecked data, each agent runs "
        "Great Expectations as it starts (about 3.4 s of CPU per party). Both start the coordinator, the workspace's "
        "Prefect server (from the empty migrated database `make setup` builds) and the party agents from nothing.",
        "Wall time: from starting the first process of the system (warm: the coordinator, or `flwr run`) to the end "
        "of the run (Consortia: after valuation, promotion, MLflow and DVC records; Flower: after the last round's "
        "evaluation). To end of round 1: from the same start to the first round's held-out score.",
        "Time per round: median interval between consecutive round ends (training, aggregation, held-out "
        "evaluation and, for Consortia, the Prefect tasks, checkpoint and MLflow metrics of the round).",
        "Bytes on the wire: TCP payload between the parties and the coordinator (SuperLink), both directions, "
        "counted by a relay; Consortia's is CURVE-encrypted ZeroMQ, Flower's plain HTTP (--insecure). The "
        "simulation has no network.",
        "Peak memory: largest sum of resident set sizes over a process and its children, sampled every 0.2 s. "
        "Consortia's coordinator: the Prefect flow's process and any it starts, less the workspace's Prefect "
        "server, shown in its own column (a child of the cold run's coordinator, which starts it; a separate "
        "long-lived process in the warm run). Flower deployment: the SuperLink with its ServerApp process (and, "
        "with process isolation, the ServerApp's SuperExec); a party is a SuperNode with its ClientApp processes "
        "(and SuperExec). Flower simulation: the SuperLink's whole tree, which holds the ServerApp, Ray and every "
        "ClientApp: the whole federation, not a coordinator alone.",
        f"Flower's simulation: {', '.join(f'{k}={v}' for k, v in setup.simulation.items())} (two ClientApps "
        "train at once on the two cores; each Ray actor keeps its ClientApp loaded between rounds).",
        "Flower's deployment engine, both isolation modes: each SuperNode (subprocess) or its SuperExec (process, "
        "polling every 0.05 s) starts a new flwr-clientapp process for every message it receives, which loads the "
        "ClientApp, torch included, before it trains; Flower 1.41 has no long-running local ClientApp.",
    ]
    runs = TextTable(
        "Every run of the peer comparison, in the order they ran",
        ["system", "seed", "wall time (s)", "to end of round 1 (s)", "time per round (s)", "wire (kB)", "accuracy"],
    )
    for one in result.runs:
        wire = (
            f"{(one.wire_up_bytes + one.wire_down_bytes) / 1e3:.1f}"
            if one.wire_up_bytes is not None and one.wire_down_bytes is not None
            else ""
        )
        runs.add(
            LABELS[one.system],
            one.seed,
            f"{one.wall_s:.1f}",
            f"{one.first_round_s:.1f}",
            f"{one.round_s:.3f}",
            wire,
            f"{one.accuracy:.4f}",
        )
    return [table, runs]


def _short(system: str) -> str:
    """``Consortia, cold`` of ``Consortia, cold (new workspace, ...)``; ``..., validating`` for that variant."""
    short = LABELS[system].split(" (")[0]
    return f"{short}, validating" if system.endswith("_validating") else short


def goals(result: PeerResult) -> list[Goal]:
    by = {s.system: s for s in result.summaries}
    if "flower_sim_cold" not in by or "consortia_warm" not in by:
        reason = result.flower_unavailable or "Flower's simulation did not run"
        return [Goal("Peer workload: warm Consortia at most Flower's simulation wall time", reason, met(None))]
    flower, warm, cold = by["flower_sim_cold"], by["consortia_warm"], by["consortia_cold"]
    g = result.goals_met
    found = [
        Goal(
            "Peer workload: warm Consortia wall time at most Flower's simulation engine's (a `flwr run` that starts "
            "its local SuperLink), equal or better accuracy",
            f"warm {warm.wall_s:.1f} s vs {flower.wall_s:.1f} s (ratio {warm.wall_s / flower.wall_s:.2f}); accuracy "
            f"{warm.accuracy:.4f} vs {flower.accuracy:.4f}",
            met(bool(g.get("warm_wall") and g.get("accuracy"))),
        ),
    ]
    if "flower_sim_warm" in by:
        best = by["flower_sim_warm"]
        found.append(
            Goal(
                "Peer workload: warm Consortia wall time at most Flower's best figure (the next `flwr run` on a "
                "running local simulation SuperLink)",
                f"warm {warm.wall_s:.1f} s vs {best.wall_s:.1f} s (ratio {warm.wall_s / best.wall_s:.2f})",
                met(warm.wall_s <= best.wall_s),
            )
        )
    found += [
        Goal(
            "Peer workload: cold Consortia within 1.5x of Flower's simulation engine",
            f"cold {cold.wall_s:.1f} s vs {flower.wall_s:.1f} s (ratio {cold.wall_s / flower.wall_s:.2f})",
            met(g.get("cold_wall")),
        ),
    ]
    if "consortia_cold_validating" in by:
        validating = by["consortia_cold_validating"]
        found.append(
            Goal(
                "Peer workload: cold Consortia from unchecked data (every party runs Great Expectations as it starts) "
                "within 1.5x of Flower's simulation engine",
                f"{validating.wall_s:.1f} s vs {flower.wall_s:.1f} s (ratio {validating.wall_s / flower.wall_s:.2f})",
                met(validating.wall_s <= 1.5 * flower.wall_s),
            )
        )
    deployments = [by[s] for s in ("flower_process", "flower_subprocess") if s in by]
    if deployments:
        theirs = min(summary.coordinator_peak_mb for summary in deployments)
        ours = max(by[s].coordinator_peak_mb for s in ("consortia_cold", "consortia_warm") if s in by)
        server = max((by[s].prefect_server_peak_mb or 0.0) for s in ("consortia_cold", "consortia_warm") if s in by)
        found.append(
            Goal(
                "Coordinator peak memory at most Flower's SuperLink with its ServerApp",
                f"{ours:.0f} MB vs {theirs:.0f} MB (plus the workspace's Prefect server, {server:.0f} MB, "
                "a separate process)",
                met(g.get("coordinator_memory")),
            )
        )
    return found


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks peer", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, one seed; prints, writes no result")
    parser.add_argument("--keep", type=Path, help="keep every workspace and log in this folder")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(GROUPS)} (with --quick)")
    parser.add_argument(
        "--record-partial",
        type=Path,
        nargs="+",
        help="record the runs that benchmarks cut short had finished (their peer-partial.json, kept with --keep)",
    )
    parser.add_argument("--note", action="append", default=[], help="with --record-partial: a note for the table")
    args = parser.parse_args(arguments)
    console = Console()
    if args.record_partial:
        finished = merged([PeerResult.model_validate_json(path.read_text()) for path in args.record_partial])
        finished.notes += args.note
        return measure_and_record(NAME, arguments, lambda: finished, tables, console, quick=False)
    setup = PeerSetup(rounds=3, seeds=[0], deployment_seeds=[0], process_seeds=[0]) if args.quick else PeerSetup()
    if args.only and args.quick:
        setup.groups = args.only.split(",")
    with scratch_folder(args.keep, "consortia-peer-") as scratch:
        return measure_and_record(NAME, arguments, lambda: run(setup, scratch, console), tables, console, args.quick)
