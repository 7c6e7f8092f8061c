"""``consortia stats``: federated descriptive statistics of a federation's dataset, per party and pooled."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.errors import ConsortiaError
from components.run.logs import log_to_file

console = Console()


def stats(
    config: Annotated[Path, typer.Argument(help="federation.yaml")],
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
    ] = None,
    bins: Annotated[int, typer.Option(min=1, max=1000, help="Histogram bins per feature.")] = 10,
) -> None:
    """Ask the federation's party agents for statistics of their rows (count, missing, mean, variance, min, max,
    histogram, quantiles); figures backed by fewer rows than a party's minimum are suppressed there."""
    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)
    try:
        federation = load_federation_config(config)
    except ConsortiaError as error:
        _fail(str(error))
    from components.run.federation import FederationRun, new_run_id  # imports torch: only for a valid config

    console.print(f"statistics: waiting for {len(federation.parties)} parties on {federation.coordinator.bind}")
    try:
        run = FederationRun(federation, space, new_run_id(f"{federation.name}-stats"))
        try:
            path = run.statistics(bins)
        finally:
            run.close()
    except ConsortiaError as error:
        _fail(f"statistics failed: {error}")
    print_report(json.loads(path.read_text()))
    console.print(f"report {path}")


def print_report(report: dict[str, Any]) -> None:
    """The pooled figures per feature, then which party suppressed what (never silent)."""
    table = Table(title=f"{report['contract']}: {', '.join(f'{p} {n} rows' for p, n in report['parties'].items())}")
    for column in ("feature", "count", "missing", "mean", "sd", "min", "median", "max"):
        table.add_column(column, justify="left" if column == "feature" else "right", no_wrap=column == "feature")
    suppressed: dict[str, list[str]] = {}
    for feature, entry in report["features"].items():
        for party in entry["left_out"]:
            suppressed.setdefault(f"{party} ({entry['parties'][party]['suppressed']})", []).append(feature)
        pooled = entry["pooled"]
        if pooled is None:
            table.add_row(feature, *["suppressed"] + ["-"] * 6)
            continue
        sd = math.sqrt(pooled["m2"] / (pooled["count"] - 1)) if pooled["count"] > 1 else math.nan
        cells = (pooled["mean"], sd, pooled["min"], entry["quantiles"].get("q50"), pooled["max"])
        table.add_row(feature, str(pooled["count"]), str(pooled["missing"]), *(_fmt(v) for v in cells))
    console.print(table)
    total = len(report["features"])
    for party, features in suppressed.items():
        shown = ", ".join(features[:5]) + (", ..." if len(features) > 5 else "")
        console.print(f"suppressed at {party}: {len(features)} of {total} features, nothing sent for them ({shown})")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=1)
