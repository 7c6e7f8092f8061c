"""``consortia approve RUN_ID [--deny] [--comment TEXT]``: answer a promotion a run holds for approval."""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.adapters.workspace import Workspace
from components.core.gates import Approval
from components.run.summary import Promotion, RunSummary

console = Console()


def approve(
    run_id: Annotated[str, typer.Argument(help="The run whose promotion is held for approval.")],
    deny: Annotated[bool, typer.Option("--deny", help="Keep the champion where it is.")] = False,
    comment: Annotated[str, typer.Option("--comment", help="Why; recorded with the decision.")] = "",
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who answers (default: your user name).")] = None,
    wait_s: Annotated[float, typer.Option("--wait-s", help="How long to wait for the run's decision.")] = 60.0,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default ./.consortia).")
    ] = None,
) -> None:
    """Approve (or --deny) the promotion a run holds for approval: the paused flow run resumes with the answer
    and moves `champion` (approved, and the champion not beaten meanwhile) or keeps it."""
    space = Workspace.at(workspace)
    space.activate()
    from flows.approval import answer  # imports prefect: only after the workspace's Prefect settings are set

    approval = Approval(approve=not deny, reviewer=reviewer or getpass.getuser(), comment=comment)
    if not answer(run_id, approval):
        console.print(f"[red]error:[/red] no flow run {run_id!r} is paused for approval", soft_wrap=True)
        raise typer.Exit(code=1)
    console.print(f"{'approved' if approval.approve else 'denied'}: run {run_id} resumes", soft_wrap=True)
    promotion = _decision(space, run_id, wait_s)
    if promotion is None:
        console.print(f"run {run_id} has not recorded its decision within {wait_s:.0f} s; see `consortia runs`")
        return
    console.print(
        f"promotion: [bold]{promotion.decision}[/bold]: {promotion.model_name} v{promotion.version}; "
        f"{promotion.alias} is v{promotion.champion_version}: {promotion.reason}",
        soft_wrap=True,
    )


def _decision(workspace: Workspace, run_id: str, wait_s: float) -> Promotion | None:
    """The run's concluded promotion once its summary records it (None if not within ``wait_s``)."""
    path = workspace.summary_path(run_id)
    deadline = time.monotonic() + wait_s
    while True:
        if path.exists():
            promotion = RunSummary.read(path).promotion
            if promotion is not None and not promotion.awaiting_approval:
                return promotion
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
