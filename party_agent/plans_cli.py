"""``party-agent requests | approve | deny``: the owner reads the run plans sent to this party and decides held ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.core.errors import ConsortiaError
from party_agent.config import load_party_config, requests_folder
from party_agent.plans import decide_by_person, list_requests, plan_lines

console = Console()
ConfigOption = Annotated[Path, typer.Option("--config", help="party.yaml")]


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=2)


def requests(
    config: ConfigOption,
    all_plans: Annotated[bool, typer.Option("--all", help="Also plans already decided.")] = False,
) -> None:
    """List the run plans waiting for your decision (with --all, every plan received), each in full."""
    try:
        folder = requests_folder(load_party_config(config))
        shown = list_requests(folder, None if all_plans else "pending") if folder.exists() else []
    except (ConsortiaError, ValueError) as error:
        _fail(error)
    if not shown:
        console.print("no plans waiting for a decision" if not all_plans else "no plans received")
    for request in shown:
        table = Table(title=f"plan {request.run_id} (received {request.received_at})", show_header=False)
        table.add_column("what")
        table.add_column("value")
        for what, value in plan_lines(request):
            table.add_row(what, str(value))
        console.print(table)


def approve(run_id: Annotated[str, typer.Argument(help="The run id (see `requests`).")], config: ConfigOption) -> None:
    """Approve a held plan: the running agent tells the coordinator and serves the run."""
    _decide(run_id, config, approve=True, reason="")


def deny(
    run_id: Annotated[str, typer.Argument(help="The run id (see `requests`).")],
    config: ConfigOption,
    reason: Annotated[str, typer.Option(help="Why: the coordinator's run summary shows it.")] = "",
) -> None:
    """Deny a held plan: this party does no work for the run, and the run's summary names you and the reason."""
    _decide(run_id, config, approve=False, reason=reason)


def _decide(run_id: str, config: Path, approve: bool, reason: str) -> None:
    try:
        decided = decide_by_person(requests_folder(load_party_config(config)), run_id, approve, reason)
    except (ConsortiaError, ValueError) as error:
        _fail(error)
    console.print(f"run {run_id}: {decided.status} ({decided.decision.reason if decided.decision else ''})")
