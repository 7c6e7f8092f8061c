"""Start party agents as OS processes and always stop them: on success, failure or Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType


def stop_process_groups(processes: Iterable[subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    """SIGTERM each process's group, wait up to ``timeout_s`` in all, then SIGKILL whatever is left of each group.

    Every process must lead its own group (``start_new_session=True``), so whatever it started stops with it.
    """
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # the group id is the leader's pid


class PartyProcesses:
    """``with PartyProcesses(configs, logs):`` runs one ``party-agent run`` process per config."""

    def __init__(self, configs: dict[str, Path], log_dir: Path) -> None:
        self.configs = configs
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> PartyProcesses:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.configs:
            self.start(name)
        return self

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"party-{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "party_agent", "run", "--config", str(self.configs[name])],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self.processes[name]

    def dead(self) -> dict[str, int]:
        """Parties whose process has exited, with exit codes."""
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"party-{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, timeout_s: float = 10.0) -> None:
        stop_process_groups(self.processes.values(), timeout_s)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
