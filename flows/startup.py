"""Opening a workspace for a run in this process: its Prefect server starts while the slow imports and MLflow's
migrations run, and the run begins once the server answers."""

from __future__ import annotations

from components.adapters.workspace import Workspace


def open_for_run(workspace: Workspace) -> None:
    """Point Prefect at the workspace (starting its server if none runs), import the flow (Prefect, torch) and
    prepare the stores meanwhile, then wait for the server."""
    workspace.activate()
    from components.run.edges import prepare_stores
    from flows import federation  # noqa: F401  imports prefect: only after PREFECT_HOME is set

    prepare_stores(workspace)  # a new workspace's MLflow migrations run while its Prefect server starts
    workspace.prefect_ready()
