"""Embedded Prefect servers left behind by a coordinator that died (SIGKILL, power loss): find and end them.

Prefect's local (ephemeral) API server is a ``uvicorn`` child of the coordinator. A coordinator killed
without a chance to stop it leaves it running, adopted by PID 1. The workspace marks every server it
starts with its owner's pid (``PREFECT_OWNER_VARIABLE`` in the environment the server inherits), so a later
command can tell an orphan (its parent is no longer its owner) from the live server of a running coordinator.
"""

from __future__ import annotations

import contextlib
import time
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
    for end in (psutil.Process.terminate, psutil.Process.kill):
        alive = [process for process in orphans if not _gone(process)]
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                end(process)
        deadline = time.monotonic() + timeout_s
        while alive and not all(map(_gone, alive)) and time.monotonic() < deadline:
            time.sleep(0.05)
    return [process.pid for process in orphans]


def _gone(process: psutil.Process) -> bool:
    """Ended: no such process, or a zombie its new parent has not reaped (not every PID 1 reaps)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
