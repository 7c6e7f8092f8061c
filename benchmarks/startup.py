"""Start-up: how long the command lines take to answer ``--help``, as whole processes.

Each command runs as a fresh process (the installed console scripts next to this interpreter), the
commands alternating, ``runs`` times each after one warm-up; the figure is the median wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.records import measure_and_record, median
from benchmarks.tables import Goal, TextTable, met

NAME = "startup"
HELP_GOAL_S = 0.5  # "well under a second"


class StartupSetup(BaseModel):
    commands: list[str] = Field(default_factory=lambda: ["party-agent", "consortia"])
    runs: int = 7


class CommandRow(BaseModel):
    command: str
    wall_s: list[float]
    median_s: float


class StartupResult(BaseModel):
    setup: StartupSetup
    rows: list[CommandRow]


def wall_seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(setup: StartupSetup, console: Console) -> StartupResult:
    scripts = Path(sys.executable).parent
    argvs = {command: [str(scripts / command), "--help"] for command in setup.commands}
    samples: dict[str, list[float]] = {command: [] for command in setup.commands}
    for argv in argvs.values():
        wall_seconds(argv)  # warm-up: the file cache, not the figure
    for run_index in range(setup.runs):
        for command, argv in argvs.items():
            samples[command].append(wall_seconds(argv))
        console.print(f"  run {run_index + 1}: " + ", ".join(f"{c} {s[-1]:.3f} s" for c, s in samples.items()))
    rows = [CommandRow(command=c, wall_s=s, median_s=median(s)) for c, s in samples.items()]
    return StartupResult(setup=setup, rows=rows)


def tables(result: StartupResult) -> list[TextTable]:
    table = TextTable(
        f"Command-line start-up: `--help`, medians of {result.setup.runs} alternating runs",
        ["command", "wall (s)", "min (s)", "max (s)"],
    )
    for row in result.rows:
        table.add(f"{row.command} --help", f"{row.median_s:.3f}", f"{min(row.wall_s):.3f}", f"{max(row.wall_s):.3f}")
    table.notes += [
        "Whole processes, interpreter start included. The CLIs import a command's libraries (torch, pandas, "
        "Great Expectations, MLflow, DVC, Prefect, pyzmq) inside the command, so `--help` loads only typer, rich "
        "and a few pydantic models.",
        "Taken while other work ran on the machine (load averages above).",
    ]
    return [table]


def goals(result: StartupResult) -> list[Goal]:
    measured = ", ".join(f"{row.command} {row.median_s:.2f} s" for row in result.rows)
    return [
        Goal(f"CLI --help in under {HELP_GOAL_S} s", measured, met(all(r.median_s < HELP_GOAL_S for r in result.rows)))
    ]


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks startup", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs; prints only")
    args = parser.parse_args(arguments)
    setup = StartupSetup(runs=3) if args.quick else StartupSetup()
    return measure_and_record(NAME, arguments, lambda: run(setup, Console()), tables, Console(), args.quick)
