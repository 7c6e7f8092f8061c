"""``consortia schedule``: serve a federation as a Prefect deployment that runs on a cron or interval schedule.

The deployment lives on the Prefect server named by PREFECT_API_URL (its scheduler creates the runs);
this process is the runner that executes them, one at a time, until it is stopped (Ctrl-C or SIGTERM).
Stopping it pauses the deployment, so no runs pile up while nobody serves them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from components.core.errors import ConfigError

log = logging.getLogger(__name__)


def prefect_server_url() -> str:
    """The Prefect server schedules live on; an error that says how to start one when none is set."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise ConfigError(
            "a schedule needs a Prefect server that outlives this command: start one (`prefect server start`) "
            "and set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api"
        )
    return url


def describe_schedule(cron: str | None, interval_s: float | None) -> str:
    """``cron '0 2 * * *'`` or ``every 3600 s``; an error unless exactly one of the two is given."""
    if (cron is None) == (interval_s is None):
        raise ConfigError("give exactly one of --cron or --interval")
    if interval_s is not None and interval_s <= 0:
        raise ConfigError(f"--interval must be positive, got {interval_s:g}")
    return f"cron {cron!r}" if cron is not None else f"every {interval_s:g} s"


def schedule_target(
    config_path: Path, cron: str | None, interval_s: float | None, name: str | None
) -> tuple[str, str, str]:
    """The schedule described, the Prefect server's URL and the deployment's name (default: the federation's);
    the config is validated even when ``name`` is given, here rather than first in a scheduled run."""
    from components.core.config import load_federation_config

    when, server = describe_schedule(cron, interval_s), prefect_server_url()
    return when, server, name or load_federation_config(config_path).name


def serve_schedule(
    config_path: Path, workspace: Path, name: str, cron: str | None = None, interval_s: float | None = None
) -> None:
    """Create (or update) deployment ``name`` of the scheduled federation flow and run its flow runs until stopped."""
    describe_schedule(cron, interval_s)
    prefect_server_url()
    try:
        _serve(name, config_path, workspace, cron, interval_s)
    finally:  # Prefect pauses on Ctrl-C but not always on SIGTERM: make stopping mean paused either way
        try:
            pause_deployment(name)
        except Exception as error:  # e.g. the server went away: do not hide why serving stopped
            log.warning("could not pause deployment %r: %s", name, error)


def pause_deployment(name: str) -> None:
    """Pause deployment ``name`` of the scheduled federation flow, so its scheduler creates no more runs."""
    from prefect.client.orchestration import get_client

    from flows.federation import scheduled_federation_flow

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{scheduled_federation_flow.name}/{name}")
        client.pause_deployment(deployment.id)


def _serve(name: str, config_path: Path, workspace: Path, cron: str | None, interval_s: float | None) -> None:
    from prefect.deployments.runner import EntrypointType

    from flows.federation import scheduled_federation_flow

    scheduled_federation_flow.serve(
        name=name,
        cron=cron,
        interval=interval_s,
        parameters={"config_path": str(config_path.resolve()), "workspace": str(workspace)},
        global_limit=1,  # never two runs of one federation at once: they would share the coordinator's address
        limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,  # the runner imports flows.federation, wherever it runs
        print_starting_message=False,
    )
