"""Start-up: how long the command lines take to answer ``--help``, and one party agent to be ready, as whole processes.

Each command runs as a fresh process (the installed console scripts next to this interpreter), the
commands alternating, ``runs`` times each after one warm-up; the figure is the median wall time.
A party (``party-agent run`` on a demo party, breast cancer) is ready when it logs its validation outcome,
just before it says hello: once validating its rows (an empty validation cache), once reusing the signed-off
summary (rows and contract unchanged), alternating. The coordinator (``consortia run`` on the demo's
federation, no party started) is ready when its port accepts a TCP connection: in a new workspace (the run
starts the workspace's Prefect server), then a second time in the same one (the server still up), alternating.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.records import measure_and_record, median
from benchmarks.tables import Goal, TextTable, met

NAME = "startup"
HELP_GOAL_S = 0.5  # "well under a second"
BARE = "python"


class StartupSetup(BaseModel):
    commands: list[str] = Field(default_factory=lambda: ["party-agent", "consortia"])
    runs: int = 7
    party_runs: int = 3


class CommandRow(BaseModel):
    command: str
    wall_s: list[float]
    median_s: float


class StartupResult(BaseModel):
    setup: StartupSetup
    rows: list[CommandRow]
    party_rows: list[CommandRow] = Field(default_factory=list)
    coordinator_rows: list[CommandRow] = Field(default_factory=list)


def wall_seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def party_ready_seconds(party_agent: Path, config: Path) -> float:
    """Seconds from starting ``party-agent run`` until it logs its validation outcome (then it is stopped)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(party_agent), "run", "--config", str(config)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "validated against" in line:
                return time.perf_counter() - started
        raise RuntimeError(f"party-agent exited ({process.wait()}) before validating")
    finally:
        process.kill()
        process.wait()


def party_startup(runs: int, console: Console) -> list[CommandRow]:
    from components.adapters.workspace import Workspace
    from flows.demo import prepare_demo
    from party_agent.config import load_party_config

    party_agent = Path(sys.executable).parent / "party-agent"
    with tempfile.TemporaryDirectory(prefix="consortia-startup-") as folder:
        config_path = prepare_demo(Workspace.at(Path(folder)), parties=2, rounds=1).party_configs["alpha"]
        cache = load_party_config(config_path).validation_cache
        assert cache is not None
        samples: dict[str, list[float]] = {"validates its rows": [], "reuses the signed-off summary": []}
        party_ready_seconds(party_agent, config_path)  # warm-up: the file cache
        for run_index in range(runs):
            shutil.rmtree(cache, ignore_errors=True)
            samples["validates its rows"].append(party_ready_seconds(party_agent, config_path))
            samples["reuses the signed-off summary"].append(party_ready_seconds(party_agent, config_path))
            console.print(f"  run {run_index + 1}: " + ", ".join(f"{c} {s[-1]:.2f} s" for c, s in samples.items()))
    return [CommandRow(command=c, wall_s=s, median_s=median(s)) for c, s in samples.items()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def coordinator_ready_seconds(workspace: Path, timeout_s: float = 300.0) -> float:
    """Seconds from starting ``consortia run`` until its port accepts a connection (then its group is stopped)."""
    from components.adapters.workspace import Workspace
    from flows.demo import prepare_demo
    from flows.processes import stop_process_groups

    port = free_port()
    layout = prepare_demo(Workspace.at(workspace), parties=2, rounds=1, port=port)
    consortia = Path(sys.executable).parent / "consortia"
    argv = [str(consortia), "run", str(layout.federation_config), "--workspace", str(workspace)]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.perf_counter() - started < timeout_s:
            if process.poll() is not None:
                raise RuntimeError(f"consortia run exited ({process.returncode}) before listening")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"the coordinator did not listen within {timeout_s} s")
    finally:
        stop_process_groups([process])


def coordinator_startup(runs: int, console: Console) -> list[CommandRow]:
    """In a new workspace (its Prefect server started by the run), then again with that server still up."""
    from components.adapters.workspace import Workspace

    samples: dict[str, list[float]] = {"new workspace": [], "second run in the workspace": []}
    for run_index in range(runs):
        with tempfile.TemporaryDirectory(prefix="consortia-startup-") as folder:
            try:
                samples["new workspace"].append(coordinator_ready_seconds(Path(folder)))
                samples["second run in the workspace"].append(coordinator_ready_seconds(Path(folder)))
            finally:
                Workspace.at(Path(folder)).prefect_server().stop()
        console.print(f"  run {run_index + 1}: " + ", ".join(f"{c} {s[-1]:.2f} s" for c, s in samples.items()))
    return [CommandRow(command=c, wall_s=s, median_s=median(s)) for c, s in samples.items()]


def run(setup: StartupSetup, console: Console) -> StartupResult:
    scripts = Path(sys.executable).parent
    argvs = {command: [str(scripts / command), "--help"] for command in setup.commands}
    argvs[BARE] = [sys.executable, "-c", "pass"]  # the interpreter alone: the floor, measured alongside
    samples: dict[str, list[float]] = {command: [] for command in argvs}
    for argv in argvs.values():
        wall_seconds(argv)  # warm-up: the file cache, not the figure
    for run_index in range(setup.runs):
        for command, argv in argvs.items():
            samples[command].append(wall_seconds(argv))
        console.print(f"  run {run_index + 1}: " + ", ".join(f"{c} {s[-1]:.3f} s" for c, s in samples.items()))
    rows = [CommandRow(command=c, wall_s=s, median_s=median(s)) for c, s in samples.items()]
    party_rows = party_startup(setup.party_runs, console)
    coordinator_rows = coordinator_startup(setup.party_runs, console)
    return StartupResult(setup=setup, rows=rows, party_rows=party_rows, coordinator_rows=coordinator_rows)


def tables(result: StartupResult) -> list[TextTable]:
    table = TextTable(
        f"Command-line start-up: `--help`, medians of {result.setup.runs} alternating runs",
        ["command", "wall (s)", "min (s)", "max (s)", "x bare interpreter"],
    )
    bare = next((row.median_s for row in result.rows if row.command == BARE), None)
    for row in result.rows:
        table.add(
            "python -c pass" if row.command == BARE else f"{row.command} --help",
            f"{row.median_s:.3f}",
            f"{min(row.wall_s):.3f}",
            f"{max(row.wall_s):.3f}",
            f"{row.median_s / bare:.1f}" if bare else "",
        )
    table.notes += [
        "Whole processes, interpreter start included. The CLIs import a command's libraries (torch, pandas, "
        "Great Expectations, MLflow, DVC, Prefect, pyzmq) inside the command, so `--help` loads only typer, rich "
        "and a few pydantic models.",
    ]
    if not result.party_rows:
        return [table]
    party = TextTable(
        f"One party agent alone, start to ready (validation logged, hello next), medians of "
        f"{result.setup.party_runs} alternating runs",
        ["party-agent run", "wall (s)", "min (s)", "max (s)"],
    )
    for row in result.party_rows:
        party.add(row.command, f"{row.median_s:.2f}", f"{min(row.wall_s):.2f}", f"{max(row.wall_s):.2f}")
    party.notes += [
        "Demo party on breast cancer (about 230 rows). Reusing: the summary in the party's validation_cache, keyed "
        "by the data file's and the contract's content hashes, so Great Expectations is not imported.",
    ]
    coordinator = TextTable(
        f"The coordinator alone (consortia run), start to listening, medians of {result.setup.party_runs} "
        "alternating runs",
        ["workspace", "wall (s)", "min (s)", "max (s)"],
    )
    for row in result.coordinator_rows:
        coordinator.add(row.command, f"{row.median_s:.2f}", f"{min(row.wall_s):.2f}", f"{max(row.wall_s):.2f}")
    coordinator.notes.append(
        "Includes loading and validating the config and importing the run (torch, Prefect). A new workspace "
        "also starts the workspace's Prefect server (`prefect server start` on a copy of the empty migrated "
        "database `make setup` built, then its health check); the second run finds it running and only checks "
        "its health."
    )
    return [table, party, coordinator]


def goals(result: StartupResult) -> list[Goal]:
    clis = [row for row in result.rows if row.command != BARE]
    measured = ", ".join(f"{row.command} {row.median_s:.2f} s" for row in clis)
    return [Goal(f"CLI --help in under {HELP_GOAL_S} s", measured, met(all(r.median_s < HELP_GOAL_S for r in clis)))]


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks startup", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs; prints only")
    args = parser.parse_args(arguments)
    setup = StartupSetup(runs=3, party_runs=1) if args.quick else StartupSetup()
    return measure_and_record(NAME, arguments, lambda: run(setup, Console()), tables, Console(), args.quick)
