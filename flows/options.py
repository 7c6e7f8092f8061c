"""Command-line options that several ``consortia`` commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorkspaceOption = Annotated[
    Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
]
CronOption = Annotated[str | None, typer.Option(help='Cron expression, e.g. "0 2 * * *" (02:00 every day).')]
IntervalOption = Annotated[float | None, typer.Option(help="Seconds between runs (instead of --cron).")]
DeploymentNameOption = Annotated[str | None, typer.Option(help="Deployment name (default: the federation's name).")]
