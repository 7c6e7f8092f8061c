"""``consortia readmit``: the MLOps engineer admits a party that left, on purpose, after it asked to come back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.errors import ConsortiaError

console = Console()


def readmit(
    name: Annotated[str, typer.Argument(help="The party's name in the federation config.")],
    config: Annotated[Path, typer.Option(help="The federation config that lists the party's key.")],
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
    ] = None,
) -> None:
    """Admit a party that left again: later runs accept its key (a party that leaves is refused until then)."""
    from components.adapters.store import FederationStore

    try:
        federation = load_federation_config(config)
        key = {p.name: p.public_key for p in federation.parties}.get(name)
        if key is None:
            raise typer.BadParameter(f"{config} lists no party {name!r}")
        readmitted = FederationStore(Workspace.at(workspace).store_url).readmit(key)
    except ConsortiaError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from None
    if readmitted:
        console.print(f"{name} is admitted again: the next run accepts its key")
    else:
        console.print(f"{name} had not left: nothing to do")
