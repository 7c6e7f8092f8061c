"""``party-agent audit verify | show``: check and read the hash-chained log of what was asked and what left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.core.errors import ConsortiaError
from party_agent.audit import read_entries, verify
from party_agent.config import load_party_config

audit_app = typer.Typer(help="Check and read this party's audit log.", no_args_is_help=True)
console = Console()
ConfigOption = Annotated[Path, typer.Option("--config", help="party.yaml")]


def _log_path(config: Path) -> Path:
    try:
        path = load_party_config(config).audit_log
    except ConsortiaError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from None
    if path is None:
        console.print("[red]error:[/red] party.yaml names no audit_log")
        raise typer.Exit(code=2)
    return path


@audit_app.command("verify")
def verify_command(config: ConfigOption) -> None:
    """Recompute the hash chain: exit code 1 and one line per problem if any entry was edited, removed or moved."""
    path = _log_path(config)
    problems = verify(path)
    if problems:
        for problem in problems:
            console.print(f"[red]{problem}[/red]")
        raise typer.Exit(code=1)
    console.print(f"{path}: {len(read_entries(path))} entries, chain intact")


@audit_app.command("show")
def show_command(
    config: ConfigOption,
    run: Annotated[str | None, typer.Option(help="Only this run's entries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The raw JSON lines.")] = False,
) -> None:
    """Print the log: when, what (plan, decision, message sent), for which run and round, and its details."""
    entries = [e for e in read_entries(_log_path(config)) if run is None or e["run_id"] == run]
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, sort_keys=True))
        return
    table = Table(title="audit log")
    for column in ("seq", "at", "event", "run", "round", "detail"):
        table.add_column(column)
    for entry in entries:
        detail = entry["detail"]
        summary = ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("plan", "header_sha256", "tensors"))
        table.add_row(
            str(entry["seq"]), entry["at"][:19], entry["event"], entry["run_id"], str(entry["round"]), summary[:200]
        )
    console.print(table)
