"""BENCHMARKS.md at the repository root, rebuilt from every result JSON present in benchmarks/results.

Results of this package's own benchmarks are rendered from their typed results; the other benchmark
modules' results are rendered by those modules' own printing functions (their text, as they print it).
A result that no longer matches its module's model is named, not rendered.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.console import Console

from benchmarks import aggregation, overhead, peer, scale, startup, transport
from benchmarks.records import RESULTS, Record, read_json
from benchmarks.tables import Goal, TextTable

REPORT = Path(__file__).parent.parent / "BENCHMARKS.md"
TEXT_WIDTH = 140


@dataclass(frozen=True)
class Section:
    """How to show one benchmark's result: its title, its Markdown body and the goals it reports on."""

    title: str
    body: Callable[[dict[str, Any], Record | None], str]
    goals: Callable[[dict[str, Any]], list[Goal]] | None = None


def own(
    model: type[BaseModel], tables: Callable[[Any], list[TextTable]], goals: Callable[[Any], list[Goal]] | None = None
) -> tuple[Callable[[dict[str, Any], Record | None], str], Callable[[dict[str, Any]], list[Goal]] | None]:
    def body(data: dict[str, Any], record: Record | None) -> str:
        return "\n".join(table.markdown() for table in tables(model.model_validate(data)))

    return body, (lambda data: goals(model.model_validate(data))) if goals else None


def printed(print_to: Callable[[Console], None]) -> str:
    """What a module prints, as plain text in a Markdown code block."""
    console = Console(record=True, width=TEXT_WIDTH, file=io.StringIO(), color_system=None)
    print_to(console)
    return f"```text\n{console.export_text().rstrip()}\n```\n"


def strategies_body(data: dict[str, Any], record: Record | None) -> str:
    from benchmarks import strategies

    result = strategies.BenchmarkResult.model_validate(data)
    return printed(lambda console: strategies.show(result, console))


def strategies_goals(data: dict[str, Any]) -> list[Goal]:
    from benchmarks import strategies

    return strategies.goals(strategies.BenchmarkResult.model_validate(data))


def valuation_body(data: dict[str, Any], record: Record | None) -> str:
    from benchmarks import valuation

    result = valuation.Result.model_validate(data)
    return printed(lambda console: console.print(valuation.table(result, record.seconds if record else 0.0)))


def valuation_properties_body(data: dict[str, Any], record: Record | None) -> str:
    from benchmarks import valuation_properties

    result = valuation_properties.Result.model_validate(data)
    seconds = record.seconds if record else 0.0
    return printed(lambda console: console.print(valuation_properties.table(result, seconds)))


def dashboard_body(data: dict[str, Any], record: Record | None) -> str:
    from benchmarks import dashboard

    result = dashboard.DashboardBenchmark.model_validate(data)
    return printed(lambda console: dashboard.show(result, console))


def heartbeat_flood_body(data: dict[str, Any], record: Record | None) -> str:
    """Honest rounds while one admitted party floods heartbeats, with and without the per-party rate limit."""
    table = TextTable(
        f"Round time while one party floods {data['flood_messages']:,} heartbeats, medians of "
        f"{len(data['pairs'])} alternating runs",
        ["round", "reference (s)", "rate-limited (s)", "limited / reference", "no limit (s)", "no limit / reference"],
    )
    for row in data["rounds"]:
        table.add(
            row["round"],
            f"{row['reference_s']:.2f}",
            f"{row['flooded_s']:.2f}",
            f"{row['ratio']:.2f}",
            f"{row['unlimited_s']:.2f}",
            f"{row['unlimited_ratio']:.2f}",
        )
    notes = (
        f"- With the limit: {data['store_calls_for_flooder']} store calls name the flooder, "
        f"{data['dropped']:,} replies dropped, flooder disconnected: {data['disconnected']}; without it "
        f"{data['unlimited_store_calls_for_flooder']:,} store calls.\n"
    )
    return table.markdown() + "\n" + notes


SECTIONS: dict[str, Section] = {
    "peer": Section("Peer comparison: Consortia vs Flower", *own(peer.PeerResult, peer.tables, peer.goals)),
    "overhead": Section("Overhead per round", *own(overhead.OverheadResult, overhead.tables, overhead.goals)),
    "startup": Section("Start-up", *own(startup.StartupResult, startup.tables, startup.goals)),
    "transport": Section(
        "Transport: protocol vs raw pyzmq", *own(transport.TransportResult, transport.tables, transport.goals)
    ),
    "aggregation": Section(
        "Aggregation: FedAvg vs memory bandwidth",
        *own(aggregation.AggregationResult, aggregation.tables, aggregation.goals),
    ),
    "scale": Section(
        "Many parties: simulated rounds at 10 to 1,000 parties", *own(scale.ScaleResult, scale.tables, scale.goals)
    ),
    "strategies": Section("Aggregation strategies (benchmarks/strategies.py)", strategies_body, strategies_goals),
    "valuation": Section("Contribution valuation (benchmarks/valuation.py)", valuation_body),
    "valuation_properties": Section(
        "Valuation properties (benchmarks/valuation_properties.py)", valuation_properties_body
    ),
    "dashboard": Section("Dashboard render times (benchmarks/dashboard.py)", dashboard_body),
    "heartbeat_flood": Section("Heartbeat flood (benchmarks/heartbeat_flood.py)", heartbeat_flood_body),
}


def load(path: Path) -> tuple[dict[str, Any], Record | None]:
    """A result's figures and, when it was written with ``write_record``, its envelope."""
    raw = read_json(path)
    if {"benchmark", "command", "machine", "data"} <= raw.keys():
        record = Record.model_validate(raw)
        return record.data, record
    return raw, None


def provenance(record: Record | None) -> str:
    if record is None:
        return "_This result file records no command, machine or date._\n"
    end = " / ".join(f"{value:.2f}" for value in record.load_average_at_end)
    return (
        f"Command `{record.command}`, started {record.started_at}, took {record.seconds:.0f} s.  \n"
        f"Machine: {record.machine.line()}; at the end {end}.  \n"
        f"torch {record.machine.packages.get('torch')}, numpy {record.machine.packages.get('numpy')}, "
        f"pyzmq {record.machine.packages.get('pyzmq')} (libzmq {record.machine.libzmq}), "
        f"prefect {record.machine.packages.get('prefect')}.\n"
    )


def render(results: Path = RESULTS) -> str:
    present = {path.stem: path for path in sorted(results.glob("*.json"))}
    ordered = [name for name in SECTIONS if name in present] + [name for name in present if name not in SECTIONS]
    goals: list[Goal] = []
    parts: list[str] = []
    for name in ordered:
        section = SECTIONS.get(name)
        title = section.title if section else name
        try:
            data, record = load(present[name])
            body = section.body(data, record) if section else f"No renderer for `{present[name].name}`.\n"
            goals += section.goals(data) if section and section.goals else []
        except (ValidationError, KeyError, TypeError, AttributeError) as error:
            record, body = None, f"`{present[name].name}` could not be rendered: {type(error).__name__}: {error}\n"
        parts += [f"## {title}\n", provenance(record), body]
    header = [
        "# Benchmarks\n",
        "Generated by `make bench` (`python -m benchmarks`; one benchmark: `python -m benchmarks NAME`) from the "
        "JSON results in `benchmarks/results/`; do not edit by hand. Each figure is a median of at least 3 runs "
        "and each comparison a ratio of figures measured side by side in the same run: on a shared machine, "
        "absolute times drift, ratios much less. Each section says when it ran and the machine's load then; sections "
        "from different dates are not comparable with each other. The start-up section of 2026-12-01 evening and "
        "the peer comparison and overhead sections of 2026-12-02 ran on a quiet machine (load averages under 2 at "
        "their start); earlier sections of 2026-12-01 ran beside other engineers' work (load averages of 6 to 35).\n",
    ]
    if goals:
        table = TextTable("Goals (reported, not enforced)", ["goal", "measured", "verdict"])
        for goal in goals:
            table.add(goal.goal, goal.measured, goal.verdict)
        header += ["## Goals\n", table.markdown()]
    return "\n".join(header + parts)


def write(path: Path = REPORT, results: Path = RESULTS) -> Path:
    path.write_text(render(results))
    return path
