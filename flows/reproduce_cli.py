"""``consortia reproduce MODEL@VERSION``: rerun the version's recorded run and say whether model and metrics match."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.adapters.workspace import Workspace
from components.core.errors import ConsortiaError
from components.run.logs import log_to_file

console = Console()


def reproduce(
    model: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS, e.g. consortia-breast-cancer@1.")],
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="Largest absolute difference that still matches.")] = 1e-6,
) -> None:
    """Rerun a registered version's recorded run (its frozen config, against the same parties, whose data
    manifests and contract versions must be the recorded ones) and compare the model parameters and metrics.
    Exit code 0 when everything matches within the tolerance, 1 otherwise."""
    from components.run.reproduction import RecordedRun
    from flows.serve import ModelReference, resolved_version

    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)
    try:
        reference = ModelReference.parse(model)
        number = resolved_version(space.tracking_uri, reference)
        from flows.reproduce import registered_version

        recorded = RecordedRun.of_version(space, registered_version(space.tracking_uri, reference.name, number))
    except ConsortiaError as error:
        _fail(str(error))
    from components.run.federation import new_run_id

    run_id = new_run_id(f"{recorded.run_id}-reproduce")
    console.print(
        f"reproducing {reference.name} v{number}: run {recorded.run_id} ({len(recorded.summary.rounds)} rounds) "
        f"as {run_id}",
        soft_wrap=True,
    )
    space.activate()
    from flows.reproduce import run_reproduction  # imports prefect: only after PREFECT_HOME is set

    try:
        report = run_reproduction(
            reference.name,
            number,
            space.root,
            run_id,
            tolerance,
            on_round=lambda row: console.print(f"round {row.round}: {_metrics(row.metrics.present())}"),
        )
    except Exception as error:  # a typed error, or Prefect's own (e.g. its local server did not start)
        _fail(f"reproduction of {reference.name} v{number} failed: {error}")
    table = Table(title=f"{reference.name} v{number}: run {report.recorded_run} against {report.rerun}")
    for column in ("what", "recorded", "rerun", "difference"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row("parameters (max)", "", "", f"{report.parameters_max_difference:.3g}")
    for name, match in report.final_metrics.items():
        rerun = "-" if match.rerun is None else f"{match.rerun:.8f}"
        table.add_row(f"final {name}", f"{match.recorded:.8f}", rerun, f"{match.difference:.3g}")
    table.add_row("per-round metrics (max)", "", "", f"{report.rounds_max_difference:.3g}")
    console.print(table)
    if report.matches:
        console.print(f"[green]reproduced[/green]: model and metrics match within {tolerance:g}")
        return
    for mismatch in report.mismatches:
        console.print(f"[red]differs:[/red] {escape(mismatch)}", soft_wrap=True)
    raise typer.Exit(code=1)


def _metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items())


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=1)
