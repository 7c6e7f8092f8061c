"""``consortia deploy``: a federation as a Prefect deployment on a work pool, run by ``prefect worker start``.

The deployment lives on the Prefect server named by PREFECT_API_URL; its scheduler creates the runs
and any worker polling the pool runs them, each in a process of its own with a fresh run id. The flow
is named by module path (``flows.federation:scheduled_federation_flow``), so a worker needs Consortia
installed, not a copy of the code; config and workspace are absolute paths the worker's machine must see.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from components.adapters.workspace import Workspace
from components.core.errors import ConfigError, ConsortiaError
from components.run.logs import log_to_file
from flows.options import CronOption, DeploymentNameOption, IntervalOption, WorkspaceOption

console = Console()

STORE_VARIABLES = ("CONSORTIA_STORE_URL", "CONSORTIA_TRACKING_URI", "CONSORTIA_MLFLOW_UI_URL")


def deployment_env() -> dict[str, str]:
    """The store settings of this shell that the deployment's runs get too (the worker's own are inherited)."""
    return {name: os.environ[name] for name in STORE_VARIABLES if os.environ.get(name)}


def ensure_process_pool(pool: str) -> bool:
    """Create process work pool ``pool`` unless it exists; True if it was created. A pool of another type
    is refused: its workers would not run the flow in a local process."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            return True
    if existing.type != "process":
        raise ConfigError(f"work pool {pool!r} is of type {existing.type!r}; deploy to a process pool")
    return False


def deploy_federation(
    config_path: Path,
    workspace: Path,
    name: str,
    pool: str,
    cron: str | None = None,
    interval_s: float | None = None,
) -> str:
    """Create (or update) deployment ``name`` of the scheduled federation flow on ``pool``; its id."""
    from prefect.deployments.runner import EntrypointType

    from flows.federation import scheduled_federation_flow

    deployment_id = scheduled_federation_flow.deploy(
        name=name,
        work_pool_name=pool,
        cron=cron,
        interval=interval_s,
        parameters={"config_path": str(config_path.resolve()), "workspace": str(workspace)},
        job_variables={"env": deployment_env()},
        concurrency_limit=1,  # never two runs of one federation at once: they would share the coordinator's address
        entrypoint_type=EntrypointType.MODULE_PATH,  # the worker imports flows.federation from its environment
        tags=["consortia"],
        print_next_steps=False,
        ignore_warnings=True,
    )
    return str(deployment_id)


def deploy(
    config: Annotated[Path, typer.Argument(help="federation.yaml")],
    pool: Annotated[str, typer.Option(help="Process work pool (created if missing).")],
    workspace: WorkspaceOption = None,
    cron: CronOption = None,
    interval: IntervalOption = None,
    name: DeploymentNameOption = None,
) -> None:
    """Deploy a federation to a Prefect work pool on a schedule; `prefect worker start --pool POOL` runs it."""
    from flows.schedule import schedule_target

    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)
    try:
        when, server, deployment = schedule_target(config, cron, interval, name)
        space.activate()
        created = ensure_process_pool(pool)
        deployment_id = deploy_federation(config, space.root, deployment, pool, cron=cron, interval_s=interval)
    except ConsortiaError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    passed = ", ".join(deployment_env()) or "none (the worker's environment decides)"
    console.print(
        f"{'created' if created else 'using'} work pool {pool!r}; deployment "
        f"'consortia-scheduled-federation/{deployment}' ({when}) on {server}, id {deployment_id}\n"
        f"store settings passed to its runs: {passed}\n"
        f"start a worker: prefect worker start --pool {pool}",
        soft_wrap=True,
    )
