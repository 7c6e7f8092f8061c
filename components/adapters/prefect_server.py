"""The workspace's own Prefect server: ``prefect server start`` once per workspace, reused by every later run.

Without PREFECT_API_URL, Prefect starts a temporary (ephemeral) API server inside every process that runs
a flow: 15-30 s of every ``consortia run`` on two cores, most of it before the coordinator listens. Prefect's
documented alternative is a long-lived ``prefect server start`` with PREFECT_API_URL pointing at it; this
module runs one per workspace (its PREFECT_HOME, its SQLite database, a free port on 127.0.0.1), records it
in ``prefect/server.json`` and hands its URL to the next command once it answers ``/health``. A recorded
server that does not answer (killed, machine restarted) is ended and replaced. The server leads its own
process group and carries no coordinator's pid (orphans.py ends only the temporary servers of dead
coordinators), so it outlives the command that started it until ``consortia prefect stop``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from components.adapters.prefect_template import seed_database, server_command
from components.core.errors import EdgeUnavailable

MODE_VARIABLE = "CONSORTIA_PREFECT_SERVER"  # "workspace" (default) or "ephemeral" (Prefect's per-process server)
SERVER_MARK = "CONSORTIA_PREFECT_WORKSPACE"  # in the server's environment: the workspace it serves
# A first start migrates a new SQLite database: minutes on a loaded 2-core machine (180 s was seen to fall short).
STARTUP_TIMEOUT_S = float(os.environ.get("CONSORTIA_PREFECT_STARTUP_TIMEOUT_S", "600"))


@dataclass(frozen=True)
class ServerRecord:
    """What ``prefect/server.json`` says about the workspace's server."""

    pid: int
    port: int
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def wanted() -> bool:
    """True unless the user chose Prefect's per-process temporary server (or points at a server of their own)."""
    return not os.environ.get("PREFECT_API_URL") and os.environ.get(MODE_VARIABLE, "workspace") != "ephemeral"


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    import urllib.request  # here, as psutil below: the workspace module is imported by every `--help`

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class WorkspaceServer:
    """``WorkspaceServer(prefect_home, log).url()``: the running server's API URL, starting one if needed."""

    def __init__(self, prefect_home: Path, log: Path) -> None:
        self.home = prefect_home
        self.log = log
        self.record_path = prefect_home / "server.json"

    def record(self) -> ServerRecord | None:
        try:
            return ServerRecord(**json.loads(self.record_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> ServerRecord | None:
        """The recorded server if it answers its health check."""
        record = self.record()
        return record if record is not None and healthy(record.url) else None

    def url(self) -> str:
        """The API URL of the workspace's healthy server; starts one (ending a dead or stuck one) if needed."""
        return self.wait(self.begin()).url

    def begin(self) -> ServerRecord:
        """The workspace's server, running or starting (then not yet healthy: ``wait`` for it, meanwhile do
        other work, e.g. imports); ends a recorded server that is dead or stuck past its start-up time."""
        with self._locked():  # two commands starting at once share one server
            record = self.record()
            if record is not None and (healthy(record.url) or self._starting(record)):
                return record
            self.stop()
            return self._launch()

    def wait(self, record: ServerRecord | None = None) -> ServerRecord:
        """``record`` (default: the recorded server) once it answers /health; EdgeUnavailable with the end of
        its log if it exits or does not answer within its start-up time."""
        record = record or self.record()
        if record is None:
            raise EdgeUnavailable("prefect server", f"no server recorded for {self.home}")
        while not healthy(record.url):
            if not self._is_ours(record.pid) or time.time() > record.started + STARTUP_TIMEOUT_S:
                with self._locked():
                    if self.record() == record:
                        self.stop(timeout_s=5.0)
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise EdgeUnavailable("prefect server", f"{self.home} did not come up:\n{tail}")
            time.sleep(0.25)
        return record

    def _starting(self, record: ServerRecord) -> bool:
        """Started by another command moments ago and still alive: wait for it rather than replace it."""
        return time.time() < record.started + STARTUP_TIMEOUT_S and self._is_ours(record.pid)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """End the recorded server's process group (if it is still this workspace's server); its pid."""
        record = self.record()
        self.record_path.unlink(missing_ok=True)
        if record is None or not self._is_ours(record.pid):
            return None
        _end_group(record.pid, timeout_s)
        return record.pid

    def _is_ours(self, pid: int) -> bool:
        """Guards against a recycled pid: the process must carry this workspace's mark."""
        import psutil

        try:
            return psutil.Process(pid).environ().get(SERVER_MARK) == str(self.home.resolve())
        except psutil.Error:
            return False

    def _launch(self) -> ServerRecord:
        """``prefect server start`` in its own session, recorded at once (it answers /health seconds later); a new
        workspace's database starts as a copy of an empty migrated one (prefect_template.py)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        seed_database(self.home)
        port = _free_port()
        command, environment = server_command(self.home, "start", "--host", "127.0.0.1", "--port", str(port))
        environment[SERVER_MARK] = str(self.home.resolve())
        with self.log.open("ab") as output:
            server = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        record = ServerRecord(pid=server.pid, port=port, started=time.time())
        self.record_path.write_text(json.dumps(asdict(record)))
        return record

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "server.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def end_servers_under(folder: Path, timeout_s: float = 10.0) -> list[int]:
    """End every workspace server whose PREFECT_HOME is inside ``folder`` (e.g. a test session's temporary
    folders), recorded or not; the pids of the groups ended."""
    import psutil

    inside = str(folder.resolve()) + os.sep
    leaders = []
    for process in psutil.process_iter():
        try:
            mark = process.environ().get(SERVER_MARK, "")
            if mark.startswith(inside) and os.getpgid(process.pid) == process.pid:
                leaders.append(process.pid)
        except (psutil.Error, OSError):
            continue
    for pid in leaders:
        _end_group(pid, timeout_s)
    return leaders


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _end_group(pid: int, timeout_s: float) -> None:
    """SIGTERM the group ``pid`` leads (the CLI and its uvicorn), then SIGKILL what is left after ``timeout_s``."""
    import psutil

    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        members = []
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
        _, alive = psutil.wait_procs(members, timeout=timeout_s)
        if not alive:
            return
