"""FedAvg throughput against what plain numpy moves through memory on this machine.

FedAvg: ``FedAvg().aggregate`` (the strategy a run calls, on ``components.core.kernels.WeightedMean``) over
10 to 100 float32 updates of an MLP with about 2.5M parameters (10 MB each), every update weighted by its
example count. Throughput = bytes of updates read / seconds.

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
    update_parameters: int = 2_500_000
    update_counts: list[int] = Field(default_factory=lambda: [10, 25, 50, 100])
    runs: int = 3
    repeats: int = 3  # timings per measurement; the fastest counts (the least disturbed by other processes)
    stream_bytes: int = STREAM_BYTES  # size of each array of the bandwidth measurement


class Bandwidth(BaseModel):
    add_gb_s: list[float]
    copy_gb_s: list[float]


class FedAvgRow(BaseModel):
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


def make_updates(setup: AggregationSetup, count: int) -> list[ClientUpdate]:
    spec = spec_for(setup.update_parameters)
    return [ClientUpdate(f"party-{i}", filled_params(spec, value=float(i)), 100 + i) for i in range(count)]


def run(setup: AggregationSetup, console: Console) -> AggregationResult:
    adds, copies = [], []
    samples: dict[int, list[float]] = {count: [] for count in setup.update_counts}
    for run_index in range(setup.runs):
        add, copy = memory_bandwidth(setup.repeats, setup.stream_bytes)
        adds.append(add)
        copies.append(copy)
        console.print(f"  run {run_index + 1}: numpy add {add:.2f} GB/s, copy {copy:.2f} GB/s")
        for count in setup.update_counts:
            updates = make_updates(setup, count)
            samples[count].append(fedavg_throughput(updates, setup.repeats))
            console.print(f"  run {run_index + 1}: FedAvg of {count} updates {samples[count][-1]:.2f} GB/s")
            del updates
            gc.collect()
    add_gb_s = median(adds)
    update_bytes = model_bytes(spec_for(setup.update_parameters))
    rows = []
    for count, values in samples.items():
        share = median(values) / add_gb_s
        rows.append(
            FedAvgRow(
                updates=count,
                update_bytes=update_bytes,
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
        ["updates", "update size (MB)", "FedAvg (GB/s of updates)", "share of bandwidth (add)", "goal (>= 50%)"],
    )
    for row in result.rows:
        table.add(
            row.updates,
            f"{row.update_bytes / 1e6:.1f}",
            f"{row.median_gb_s:.2f}",
            f"{row.share_of_bandwidth:.0%}",
            met(row.goal_met),
        )
    table.notes += [
        "FedAvg: FedAvg().aggregate over float32 updates weighted by example counts, float64 accumulation; "
        "GB/s = update bytes read per second (10^9 bytes). Besides reading each 4-byte weight, the kernel widens "
        "it to float64 and reads and writes the 8-byte running sum, so it moves at least 5 bytes per update byte.",
        f"Bandwidth: numpy add on {result.setup.stream_bytes >> 20} MB float32 arrays, bytes read and written per "
        "second; one core, like FedAvg.",
        f"Each figure: the fastest of {result.setup.repeats} timings within a run, then the median over runs.",
    ]
    return [table]


def goals(result: AggregationResult) -> list[Goal]:
    measured = ", ".join(f"{row.updates} updates {row.share_of_bandwidth:.0%}" for row in result.rows)
    verdicts = {row.goal_met for row in result.rows}
    verdict = met(True) if verdicts == {True} else met(False) if verdicts == {False} else "met for some counts"
    return [Goal("FedAvg at least 50% of the measured memory bandwidth", measured, verdict)]


def main(argv: Sequence[str] | None = None) -> Path | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks aggregation", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 25 updates, one run; prints, writes no result")
    args = parser.parse_args(arguments)
    console = Console()
    setup = AggregationSetup(update_counts=[10, 25], runs=1) if args.quick else AggregationSetup()
    return measure_and_record(NAME, arguments, lambda: run(setup, console), tables, console, args.quick)
