"""FedAvg throughput against what plain numpy moves through memory on this machine.

FedAvg: ``FedAvg().aggregate`` (the strategy a run calls, on ``components.core.kernels.WeightedMean``) over
10 to 50 float32 updates of MLPs with about 1M and 10M parameters (4 and 40 MB each), every update weighted
by its example count. Throughput = bytes of updates read / seconds.

Memory bandwidth: ``np.add(a, b, out=c)`` on three float32 arrays of 256 MB (STREAM's "add": two arrays
read, one written), bytes moved / seconds; also ``np.copyto`` (one read, one written) for context.
Both on one core, as numpy's element-wise kernels run. Measured side by side: each run measures the
bandwidth, then FedAvg at every update count.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from rich.console import Console

from benchmarks.models import filled_params, model_bytes, spec_for
from benchmarks.records import measure_and_record, median
from benchmarks.tables import Goal, TextTable, met
from components.core.strategies.base import ClientUpdate
from components.core.strategies.fedavg import FedAvg

NAME = "aggregation"
GOAL = 0.5
STREAM_BYTES = 256 << 20


class AggregationSetup(BaseModel):
    update_parameters: list[int] = Field(default_factory=lambda: [1_000_000, 10_000_000])
    update_counts: list[int] = Field(default_factory=lambda: [10, 25, 50])
    runs: int = 3
    repeats: int = 3  # timings per measurement; the fastest counts (the least disturbed by other processes)
    stream_bytes: int = STREAM_BYTES  # size of each array of the bandwidth measurement


class Bandwidth(BaseModel):
    add_gb_s: list[float]
    copy_gb_s: list[float]


class FedAvgRow(BaseModel):
    parameters: int
    updates: int
    update_bytes: int
    gb_s: list[float]
    median_gb_s: float
    share_of_bandwidth: float
    goal_met: bool


class AggregationResult(BaseModel):
    setup: AggregationSetup
    bandwidth: Bandwidth
    add_gb_s: float
    copy_gb_s: float
    rows: list[FedAvgRow]


def fastest(action: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def memory_bandwidth(repeats: int, stream_bytes: int = STREAM_BYTES) -> tuple[float, float]:
    """GB/s moved by numpy's add (2 reads + 1 write) and copy (1 read + 1 write) on arrays far beyond cache."""
    count = stream_bytes // 4
    a, b, c = (np.full(count, value, dtype=np.float32) for value in (1.0, 2.0, 0.0))
    add = 3 * count * 4 / fastest(lambda: np.add(a, b, out=c), repeats) / 1e9
    copy = 2 * count * 4 / fastest(lambda: np.copyto(c, a), repeats) / 1e9
    return add, copy


def fedavg_throughput(updates: list[ClientUpdate], repeats: int) -> float:
    """GB/s of update bytes FedAvg reads."""
    strategy = FedAvg()
    current = updates[0].params
    total = sum(a.nbytes for update in updates for a in update.params.values())
    return total / fastest(lambda: strategy.aggregate(1, current, updates), repeats) / 1e9


def make_updates(parameters: int, count: int) -> list[ClientUpdate]:
    spec = spec_for(parameters)
    return [ClientUpdate(f"party-{i}", filled_params(spec, value=float(i)), 100 + i) for i in range(count)]


def run(setup: AggregationSetup, console: Console) -> AggregationResult:
    adds, copies = [], []
    cases = [(parameters, count) for parameters in setup.update_parameters for count in setup.update_counts]
    samples: dict[tuple[int, int], list[float]] = {case: [] for case in cases}
    for run_index in range(setup.runs):
        add, copy = memory_bandwidth(setup.repeats, setup.stream_bytes)
        adds.append(add)
        copies.append(copy)
        console.print(f"  run {run_index + 1}: numpy add {add:.2f} GB/s, copy {copy:.2f} GB/s")
        for parameters, count in cases:
            updates = make_updates(parameters, count)
            samples[parameters, count].append(fedavg_throughput(updates, setup.repeats))
            console.print(
                f"  run {run_index + 1}: FedAvg of {count} updates of {parameters:,} parameters "
                f"{samples[parameters, count][-1]:.2f} GB/s"
            )
            del updates
            gc.collect()
    add_gb_s = median(adds)
    rows = []
    for (parameters, count), values in samples.items():
        share = median(values) / add_gb_s
        rows.append(
            FedAvgRow(
                parameters=parameters,
                updates=count,
                update_bytes=model_bytes(spec_for(parameters)),
                gb_s=values,
                median_gb_s=median(values),
                share_of_bandwidth=share,
                goal_met=share >= GOAL,
            )
        )
    return AggregationResult(
        setup=setup,
        bandwidth=Bandwidth(add_gb_s=adds, copy_gb_s=copies),
        add_gb_s=add_gb_s,
        copy_gb_s=median(copies),
        rows=rows,
    )


def tables(result: AggregationResult) -> list[TextTable]:
    table = TextTable(
        f"FedAvg throughput vs numpy memory bandwidth (add {result.add_gb_s:.2f} GB/s, copy {result.copy_gb_s:.2f} "
        f"GB/s), medians of {result.setup.runs} runs",
        ["parameters", "updates", "update size (MB)", "FedAvg (GB/s of updates)", "share of bandwidth (add)"]
        + ["goal (>= 50%)"],
    )
    for row in result.rows:
        table.add(
            f"{row.parameters:,}",
            row.updates,
            f"{row.update_bytes / 1e6:.1f}",
            f"{row.median_gb_s:.2f}",
            f"{row.share_of_bandwidth:.0%}",
            met(row.goal_met),
        )
    table.notes += [
        "FedAvg: FedAvg().aggregate over float32 updates weighted by example counts; GB/s = update bytes read per "
        "second (10^9 bytes). The kernel sums blocks of 32K coordinates of every update in a float32 buffer that "
        "stays in cache and writes each block of the mean once, so memory sees each update read once and the "
        "result written once (numpy add moves 3 bytes per byte it reads from one array, this kernel about 1).",
        f"Bandwidth: numpy add on {result.setup.stream_bytes >> 20} MB float32 arrays, bytes read and written per "
        "second; one core, like FedAvg.",
        f"Each figure: the fastest of {result.setup.repeats} timings within a run, then the median over runs.",
        f"Against numpy copy ({result.copy_gb_s:.2f} GB/s counting its read and its write; copy writes around the "
        "cache, so it can outrun add) the best FedAvg row is "
        f"{max(row.median_gb_s for row in result.rows) / result.copy_gb_s:.0%}, and "
        f"{max(row.median_gb_s for row in result.rows) / (result.copy_gb_s / 2):.0%} of copy's read half alone.",
        "The machine's load averages are above: on a shared machine, compare the ratios, not the GB/s.",
    ]
    return [table]


def goals(result: AggregationResult) -> list[Goal]:
    measured = ", ".join(
        f"{row.parameters / 1e6:g}M x {row.updates} {row.share_of_bandwidth:.0%}" for row in result.rows
    )
    verdicts = {row.goal_met for row in result.rows}
    verdict = met(True) if verdicts == {True} else met(False) if verdicts == {False} else "met for some counts"
    return [Goal("FedAvg at least 50% of the measured memory bandwidth from 1M parameters up", measured, verdict)]


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks aggregation", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M parameters, 10 and 25 updates, one run; prints only")
    args = parser.parse_args(arguments)
    console = Console()
    quick = AggregationSetup(update_parameters=[1_000_000], update_counts=[10, 25], runs=1)
    setup = quick if args.quick else AggregationSetup()
    return measure_and_record(NAME, arguments, lambda: run(setup, console), tables, console, args.quick)
