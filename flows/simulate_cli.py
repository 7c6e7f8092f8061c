"""``consortia simulate --parties N``: a federation run against N simulated parties on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.adapters.workspace import Workspace
from components.run.logs import log_to_file
from flows.progress import rounds_progress

console = Console()


def simulate(
    parties: Annotated[int, typer.Option(help="Simulated parties (each its own key pair, rows and connection).")] = 50,
    model: Annotated[str, typer.Option(help="MLP size: 10k or 1m parameters.")] = "10k",
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 2,
    rows: Annotated[int, typer.Option(help="Generated rows per party (the contract asks for 10 at least).")] = 20,
    processes: Annotated[
        int | None, typer.Option(help="Party processes (default: one per 250 parties, 4 at most).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for rows, split and model.")] = 0,
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="Workspace folder.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the measurements as JSON here.")] = None,
) -> None:
    """Run one federation (the `consortia run` coordinator) against N party agents in a few local processes,
    each party on its own partition of generated breast-cancer rows, and measure every round at the coordinator."""
    if model not in ("10k", "1m"):
        console.print(f"[red]error:[/red] unknown model {model!r}; choose 10k or 1m")
        raise typer.Exit(code=1)
    if parties < 1 or rows < 10:
        console.print("[red]error:[/red] a simulation needs at least 1 party and 10 rows per party")
        raise typer.Exit(code=1)
    from components.run.federation import new_run_id
    from flows.simulation import prepare_simulation
    from flows.simulation import simulate as run_simulation

    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)
    with console.status(f"writing rows, keys and configs for {parties} parties"):
        simulation = prepare_simulation(space, parties, rounds, model, rows, processes, seed)  # type: ignore[arg-type]
    run_id = new_run_id(f"simulate-{parties}")
    console.print(
        f"run {run_id}: {parties} parties in {len(simulation.assignments)} processes, "
        f"{simulation.parameters:,}-parameter MLP, {rounds} rounds (workspace {space.root})"
    )
    with rounds_progress(console) as progress:
        bar = progress.add_task("rounds", total=rounds, status="parties joining, validating, initialising")

        def on_round(row, measured) -> None:  # type: ignore[no-untyped-def]
            status = f"round {row.round}: {len(row.participants)} parties, {row.seconds:.1f} s"
            if measured is not None:
                status += f", {measured.messages_per_s:,.0f} msg/s, peak {measured.peak_rss_mb:,.0f} MB"
            progress.update(bar, completed=row.round, status=status)

        result = run_simulation(space, simulation, run_id, on_round)
    for measured in result.rounds:
        console.print(
            f"round {measured.round}: {measured.participants} parties, {measured.seconds:.2f} s, "
            f"{measured.messages_per_s:,.0f} messages/s at the coordinator, peak RSS {measured.peak_rss_mb:,.0f} MB"
        )
    console.print(f"run {result.run_id} {result.status}; final held-out accuracy {result.final_accuracy}")
    if report is not None:
        report.write_text(result.model_dump_json(indent=2))
        console.print(f"measurements {report}")
