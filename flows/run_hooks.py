"""State hooks of the federation flow: how each flow run ended goes to the run log and the federation store.

Prefect calls them in the flow run's process once its final state is set (completed, failed, crashed),
whoever started it: ``consortia run``, a schedule's runner or a work pool's worker. A hook never raises:
recording the ending must not change it.
"""

from __future__ import annotations

import logging
from typing import Any

from components.adapters.workspace import Workspace

log = logging.getLogger(__name__)


def record_flow_run_end(flow: Any, flow_run: Any, state: Any) -> None:
    """Write ``state`` of ``flow_run`` (a federation flow run) to its Prefect log, the coordinator log and
    the federation store's ``flow_runs`` table (a run still marked running is marked failed)."""
    from prefect.logging.loggers import flow_run_logger

    from components.adapters.store import FederationStore

    run_id = flow_run.parameters.get("run_id", flow_run.name)
    state_type = state.type.value
    message = state.message or ""
    line = f"federation run {run_id}: flow run {flow_run.id} {state_type}" + (f": {message}" if message else "")
    level = logging.INFO if state_type == "COMPLETED" else logging.ERROR
    log.log(level, line)
    try:
        flow_run_logger(flow_run, flow).log(level, line)
        workspace = Workspace.at(flow_run.parameters.get("workspace"))
        FederationStore(workspace.store_url).record_flow_run(run_id, str(flow_run.id), state_type, message)
    except Exception:
        log.exception("could not record how flow run %s of run %s ended", flow_run.id, run_id)


HOOKS: dict[str, Any] = {
    "on_completion": [record_flow_run_end],
    "on_failure": [record_flow_run_end],
    "on_crashed": [record_flow_run_end],
}
