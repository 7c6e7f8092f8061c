"""Embedded Prefect servers left behind by a coordinator that died (SIGKILL, power loss): find and end them.

Prefect's local (ephemeral) API server is a ``uvicorn`` child of the coordinator. A coordinator killed
without a chance to stop it leaves it running, adopted by PID 1. The workspace marks every server it
starts with its owner's pid (``PREFECT_OWNER_VARIABLE`` in the environment the server inherits), so a later
command can tell an orphan (its parent is no longer its owner) from the live server of a running coordinator.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil

from components.adapters.workspace import PREFECT_OWNER_VARIABLE

_SERVER_APP = "prefect.server.api.server:create_app"


def orphaned_servers(prefect_home: Path) -> list[psutil.Process]:
    """Embedded Prefect servers started for ``prefect_home`` whose owning coordinator is gone."""
    home = str(prefect_home.resolve())
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if _SERVER_APP not in (process.info["cmdline"] or []):
            continue
        try:
            environment = process.environ()
            owner = environment.get(PREFECT_OWNER_VARIABLE)
            if environment.get("PREFECT_HOME") == home and owner is not None and process.ppid() != int(owner):
                found.append(process)
        except (psutil.Error, ValueError):  # gone meanwhile, another user's, or a malformed mark
            continue
    return found


def end_orphaned_servers(prefect_home: Path, timeout_s: float = 5.0) -> list[int]:
    """Terminate (then kill, after ``timeout_s``) every orphaned server of ``prefect_home``; their pids."""
    orphans = orphaned_servers(prefect_home)
    for process in orphans:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(orphans, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout_s)
    return [process.pid for process in orphans]
