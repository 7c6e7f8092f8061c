"""``consortia prefect start|status|stop``: the workspace's long-lived Prefect server (adapters/prefect_server.py).

Runs start it on first use; these commands show it (its URL, for ``prefect`` commands and the Prefect UI)
and stop it, e.g. before deleting the workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.adapters.workspace import Workspace
from components.core.errors import ConsortiaError

prefect_app = typer.Typer(help="The workspace's Prefect server: started by the first run, reused by every later one.")
console = Console()
WorkspaceOption = Annotated[
    Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
]


@prefect_app.command()
def start(workspace: WorkspaceOption = None) -> None:
    """Start the workspace's Prefect server (a no-op when it is running) and print its API URL."""
    space = Workspace.at(workspace).create()
    try:
        url = space.prefect_server().url()
    except ConsortiaError as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    _print_running(url)


@prefect_app.command()
def status(workspace: WorkspaceOption = None) -> None:
    """Whether the workspace's Prefect server runs, and its API URL (exit code 1 when it does not)."""
    server = Workspace.at(workspace).prefect_server()
    record = server.running()
    if record is None:
        console.print(f"no Prefect server running for {server.home} (the next run starts one)")
        raise typer.Exit(code=1)
    console.print(f"pid {record.pid}")
    _print_running(record.url)


@prefect_app.command()
def stop(workspace: WorkspaceOption = None) -> None:
    """Stop the workspace's Prefect server (its database stays; the next run starts it again)."""
    server = Workspace.at(workspace).prefect_server()
    pid = server.stop()
    console.print(f"stopped Prefect server pid {pid}" if pid else f"no Prefect server running for {server.home}")


def _print_running(url: str) -> None:
    console.print(f"Prefect server {url} (UI {url.removesuffix('/api')}); for prefect commands:", soft_wrap=True)
    console.print(f"export PREFECT_API_URL={url}", soft_wrap=True, highlight=False)
