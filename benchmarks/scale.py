"""Many parties: rounds with 10, 100 and 1,000 simulated parties x MLPs of about 10K and 1M parameters.

Each case is one ``consortia simulate`` process (a fresh coordinator, so its memory is that case's alone) with
its parties in a few more processes, over real CURVE sockets on 127.0.0.1, FedAvg with ``party_updates: none``
(every update folded into the running sum as it arrives). Per round after the first (the first carries the
start-up): seconds, the coordinator process's peak RSS, and messages per second through its ROUTER (in + out).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.launch import Launched, wait_for_port
from benchmarks.records import measure_and_record, median, scratch_folder
from benchmarks.tables import Goal, TextTable, met
from flows.demo import free_port
from flows.simulation import SimulationReport

NAME = "scale"
MEMORY_GOAL = 3.0  # peak coordinator memory at 1,000 parties x 1M parameters <= 3x that at 10 parties


class ScaleSetup(BaseModel):
    parties: list[int] = Field(default_factory=lambda: [10, 100, 1000])
    models: list[str] = Field(default_factory=lambda: ["1m", "10k"])
    rounds: int = 2  # the first is not measured (it carries the start-up): round 2 is
    rows_per_party: int = 20


class ScaleRow(BaseModel):
    parties: int
    model: str
    parameters: int
    status: str
    seconds_per_round: float
    peak_rss_mb: float  # the largest RSS of the coordinator process within a measured round
    rss_at_first_round_mb: float
    messages_per_s: float
    participants: list[int]
    wall_s: float  # the whole command: preparing, start-up, every round, settling and promotion


class ScaleResult(BaseModel):
    setup: ScaleSetup
    rows: list[ScaleRow]


def one_case(parties: int, model: str, setup: ScaleSetup, folder: Path, console: Console) -> ScaleRow:
    report = folder / f"report-{parties}-{model}.json"
    command = [sys.executable, "-m", "flows", "simulate", "--parties", str(parties), "--model", model]
    command += ["--rounds", str(setup.rounds), "--rows", str(setup.rows_per_party)]
    command += ["--workspace", str(folder / f"ws-{parties}-{model}"), "--report", str(report)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0 or not report.exists():
        console.print(done.stdout[-3000:], done.stderr[-3000:])
        raise RuntimeError(f"simulate --parties {parties} --model {model} failed ({done.returncode})")
    (folder / f"wall-{parties}-{model}.txt").write_text(f"{wall:.1f}")
    return case_row(parties, model, report, wall, console)


def case_row(parties: int, model: str, report: Path, wall: float, console: Console) -> ScaleRow:
    """One case's row from the report its ``consortia simulate`` wrote."""
    result = SimulationReport.model_validate_json(report.read_text())
    rounds = result.rounds
    row = ScaleRow(
        parties=parties,
        model=model,
        parameters=result.parameters,
        status=result.status,
        seconds_per_round=median([r.seconds for r in rounds]),
        peak_rss_mb=max(r.peak_rss_mb for r in rounds),
        rss_at_first_round_mb=result.rss_at_first_round_mb,
        messages_per_s=median([r.messages_per_s for r in rounds]),
        participants=[r.participants for r in rounds],
        wall_s=wall,
    )
    console.print(
        f"  {parties} parties x {result.parameters:,} parameters: {row.seconds_per_round:.2f} s/round, "
        f"peak {row.peak_rss_mb:,.0f} MB, {row.messages_per_s:,.0f} msg/s ({wall:.0f} s in all)"
    )
    return row


def run(setup: ScaleSetup, console: Console, keep: Path | None = None) -> ScaleResult:
    """Every case against one Prefect server (started here unless PREFECT_API_URL names one): the cases measure
    rounds, not Prefect's start-up."""
    given = os.environ.get("PREFECT_API_URL")
    with scratch_folder(keep, "consortia-scale-") as folder, Launched(folder / "logs") as launched:
        try:
            if not given:
                port = free_port()
                prefect = Path(sys.executable).parent / "prefect"
                env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "0"}
                command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
                wait_for_port(port, timeout_s=300, alive=launched.start("prefect-server", command, env))
                os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
            rows = [one_case(n, model, setup, folder, console) for model in setup.models for n in setup.parties]
        finally:
            if not given:
                os.environ.pop("PREFECT_API_URL", None)
    return ScaleResult(setup=setup, rows=rows)


def _ratio(result: ScaleResult, model: str) -> float | None:
    by_parties = {row.parties: row for row in result.rows if row.model == model}
    small, large = min(by_parties, default=None), max(by_parties, default=None)
    if small is None or large is None or small == large:
        return None
    return by_parties[large].peak_rss_mb / by_parties[small].peak_rss_mb


def tables(result: ScaleResult) -> list[TextTable]:
    table = TextTable(
        "Rounds with many simulated parties (FedAvg, party_updates: none): "
        + (f"rounds 2 to {result.setup.rounds}" if result.setup.rounds > 2 else "round 2")
        + " (round 1 carries the start-up)",
        ["parties", "parameters", "s / round", "coordinator peak RSS (MB)", "RSS after round 1 (MB)"]
        + ["messages / s at the coordinator", "parties per round", "status"],
    )
    for row in result.rows:
        table.add(
            f"{row.parties:,}",
            f"{row.parameters:,}",
            f"{row.seconds_per_round:.2f}",
            f"{row.peak_rss_mb:,.0f}",
            f"{row.rss_at_first_round_mb:,.0f}",
            f"{row.messages_per_s:,.0f}",
            "/".join(str(p) for p in row.participants),
            row.status,
        )
    table.notes += [
        "One `consortia simulate` process per row: the coordinator of `consortia run` (Prefect flow, SQLite stores, "
        "MLflow, CURVE ROUTER on 127.0.0.1) against N real PartyAgents, 250 per process at most (4 processes at "
        "most), each with its own key pair, connection and partition of generated breast-cancer rows "
        f"({result.setup.rows_per_party} rows a party). Parties share their process's one training thread, so "
        "parties train one after another within a process: seconds per round grow with N on these 2 cores.",
        "Peak RSS: the coordinator process's largest resident memory sampled every 20 ms within the measured rounds; "
        "it includes everything the process has loaded (torch, Prefect, MLflow), which is most of it at 10K "
        "parameters. Messages: read from and handed to the ROUTER (hellos, heartbeats, requests, replies) per "
        "second of the round.",
        "Memory grows with the model, not with parties x model, because FedAvg and FedProx fold each update into "
        "one float32 running sum as it arrives (components/core/kernels.py RunningMean) when the run keeps no "
        "per-party updates (party_updates: none). Robust rules (median, trimmed mean, Krum, mixing), wrappers "
        "(clipping, DP), a max_party_weight cap, and contribution valuation need every update of a round, so runs "
        "with them keep each update until the round ends: their memory grows with parties x model.",
        "Requests carrying the model go out in waves of coordinator.max_inflight_mb (256 MB: 64 requests of the 1M "
        "model unanswered at once), since each copy in flight is encrypted for its party separately.",
    ]
    return [table]


def goals(result: ScaleResult) -> list[Goal]:
    found: list[Goal] = []
    thousand = [row for row in result.rows if row.parties >= 1000]
    if thousand:
        completed = all(row.status == "completed" and min(row.participants) == row.parties for row in thousand)
        measured = ", ".join(f"{row.parameters:,} params: {'/'.join(map(str, row.participants))}" for row in thousand)
        found.append(Goal("a 1,000-party round completes (every party's update in)", measured, met(completed)))
    ratio = _ratio(result, "1m")
    if ratio is not None:
        found.append(
            Goal(
                f"coordinator peak memory at 1,000 parties x 1M parameters <= {MEMORY_GOAL:g}x that at 10 (FedAvg)",
                f"{ratio:.2f}x",
                met(ratio <= MEMORY_GOAL),
            )
        )
    return found


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 parties, 10K parameters; prints only")
    parser.add_argument("--keep", type=Path, help="keep the workspaces and logs in this folder")
    parser.add_argument("--collect", type=Path, help="only gather the cases a --keep folder holds (an interrupted run)")
    args = parser.parse_args(arguments)
    console = Console()
    setup = ScaleSetup(parties=[10, 100], models=["10k"], rounds=2) if args.quick else ScaleSetup()
    if args.collect is not None:
        return measure_and_record(
            NAME, arguments, lambda: collect(setup, args.collect, console), tables, console, False
        )
    return measure_and_record(NAME, arguments, lambda: run(setup, console, args.keep), tables, console, args.quick)


def collect(setup: ScaleSetup, folder: Path, console: Console) -> ScaleResult:
    """The cases of ``setup`` whose reports ``folder`` holds (a run that was stopped keeps what it finished)."""
    rows = []
    for model in setup.models:
        for parties in setup.parties:
            report, wall = folder / f"report-{parties}-{model}.json", folder / f"wall-{parties}-{model}.txt"
            if report.exists():
                rows.append(
                    case_row(parties, model, report, float(wall.read_text()) if wall.exists() else 0.0, console)
                )
    return ScaleResult(setup=setup, rows=rows)
