"""A real PostgreSQL server for tests: Debian's binaries (``make system``), a temporary cluster on 127.0.0.1.

As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root); otherwise as the
current user. Authentication is ``trust`` on 127.0.0.1 only: the cluster lives as long as the test session.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOT_INSTALLED = "PostgreSQL is not installed (no initdb/pg_ctl): `make system` installs Debian's postgresql as root"


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest ``/usr/lib/postgresql/N/bin``."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    """One temporary cluster; ``url(database)`` is a SQLAlchemy URL with Consortia's driver (psycopg)."""

    bin: Path
    data: Path
    port: int
    run_as: str | None  # "postgres" when the tests run as root

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        return ["runuser", "-u", self.run_as, "--", *command] if self.run_as else command

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(self._command(program, *args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.data, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create database ``name``; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"


def start_postgres(port: int) -> PostgresServer | str:
    """A started server on ``port``, or the reason there cannot be one on this machine."""
    folder = postgres_bin()
    if folder is None:
        return NOT_INSTALLED
    run_as = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            return "running as root without a `postgres` user (or runuser) to run PostgreSQL as"
        run_as = "postgres"
    data = Path(tempfile.mkdtemp(prefix="consortia-pg-"))
    if run_as:
        shutil.chown(data, user=run_as)
    server = PostgresServer(folder, data, port, run_as)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)
        raise
    return server
