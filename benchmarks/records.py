"""The envelope of every result JSON in benchmarks/results: what ran, where, when, plus the figures."""

from __future__ import annotations

import json
import shlex
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from benchmarks.machine import MachineFacts, machine_facts

RESULTS = Path(__file__).parent / "results"


class Record(BaseModel):
    """One benchmark's result file: ``data`` holds the benchmark's own typed result as JSON."""

    benchmark: str
    command: str
    started_at: str
    seconds: float
    machine: MachineFacts
    load_average_at_end: tuple[float, float, float]
    data: dict[str, Any]


def result_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def command_line(name: str, argv: Sequence[str]) -> str:
    """How to run this benchmark again, as a person would type it."""
    return shlex.join(["python", "-m", "benchmarks", name, *argv])


def write_record(
    name: str, command: str, data: BaseModel, started_at: datetime, seconds: float, facts: MachineFacts
) -> Path:
    """Write ``benchmarks/results/<name>.json``."""
    record = Record(
        benchmark=name,
        command=command,
        started_at=started_at.isoformat(timespec="seconds"),
        seconds=seconds,
        machine=facts,
        load_average_at_end=machine_facts().load_average,
        data=data.model_dump(mode="json"),
    )
    path = result_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.model_dump_json(indent=2) + "\n")
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def now() -> datetime:
    return datetime.now(UTC)


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def measure_and_record(
    name: str,
    arguments: Sequence[str],
    measure: Callable[[], BaseModel],
    tables: Callable[[Any], Sequence[Any]],
    console: Console,
    quick: bool,
) -> Path | None:
    """Run ``measure``, print its tables and, unless ``quick``, write its record (command, machine, timing)."""
    started, facts, clock = now(), machine_facts(), time.perf_counter()
    result = measure()
    for table in tables(result):
        console.print(table.rich())
    if quick:
        return None
    path = write_record(name, command_line(name, arguments), result, started, time.perf_counter() - clock, facts)
    console.print(f"wrote {path}")
    return path


@contextmanager
def scratch_folder(keep: Path | None, prefix: str) -> Iterator[Path]:
    """``keep`` if given (left in place), else a temporary folder removed afterwards."""
    folder = keep or Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
