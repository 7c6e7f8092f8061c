"""An empty Prefect database, migrated once per installed Prefect version and copied into each new workspace.

A workspace's Prefect server migrates a new SQLite database before it answers: about 5 s of CPU of the 12 s its
first start takes on two cores, paid again by every new workspace. Instead, Prefect's own command
(``prefect server database upgrade``) migrates one empty database into the user's cache
(``~/.cache/consortia/prefect-<version>/``, or ``$CONSORTIA_CACHE``); a new workspace starts from a copy of it, so
its server finds the schema at head. ``make setup`` builds it; otherwise the first new workspace on the machine
does. A database of the user's own (``PREFECT_API_DATABASE_CONNECTION_URL``, e.g. PostgreSQL) is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from filelock import FileLock

CACHE_VARIABLE = "CONSORTIA_CACHE"
DATABASE_URL_VARIABLES = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")
BUILD_TIMEOUT_S = 600.0  # migrating from nothing: about 9 s on a quiet 2-core machine

logger = logging.getLogger(__name__)


def cache_root() -> Path:
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "consortia"


def template_path() -> Path:
    """Where the empty database of the installed Prefect version is kept."""
    return cache_root() / f"prefect-{version('prefect')}" / "prefect.db"


def server_command(home: Path, *arguments: str) -> tuple[list[str], dict[str, str]]:
    """A ``prefect server ...`` command of the installed Prefect and its environment: ``home`` as PREFECT_HOME, no
    analytics, and no API URL or owner of another server (this server is its own, owned by no command)."""
    environment = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for variable in ("PREFECT_API_URL", "CONSORTIA_PREFECT_OWNER"):
        environment.pop(variable, None)
    return [str(Path(sys.executable).parent / "prefect"), "server", *arguments], environment


def own_database_chosen() -> bool:
    """True when the user points Prefect at a database of their own: then there is nothing to copy."""
    return any(os.environ.get(variable) for variable in DATABASE_URL_VARIABLES)


def build_template() -> Path:
    """The empty migrated database, built by ``prefect server database upgrade`` if it is not there yet."""
    path = template_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.parent / ".build.lock"):  # two commands building at once: one builds, one waits
        if path.exists():
            return path
        with tempfile.TemporaryDirectory(dir=path.parent, prefix="building-") as scratch:
            command, environment = server_command(Path(scratch), "database", "upgrade", "-y")
            subprocess.run(
                command,
                env=environment,
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT_S,
            )
            os.replace(Path(scratch) / "prefect.db", path)
    return path


def seed_database(prefect_home: Path) -> bool:
    """Copy the empty migrated database into a workspace's PREFECT_HOME that has none; False when it keeps its own
    (or the user's), or the template cannot be built (then the server migrates a new database, as Prefect does)."""
    target = prefect_home / "prefect.db"
    if own_database_chosen() or target.exists():
        return False
    try:
        template = build_template()
        partial = target.with_suffix(".copying")
        shutil.copyfile(template, partial)
        os.replace(partial, target)
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("no empty Prefect database to start from (%s): the server migrates a new one", error)
        return False
    return True


if __name__ == "__main__":  # `make setup`: build it once, outside any run
    print(build_template())
