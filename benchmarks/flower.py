"""Flower's deployment engine on this machine: its own virtual environment, a SuperLink, SuperNodes, ``flwr run``.

flwr is never a Consortia dependency (its pins clash with Prefect's): ``ensure_flower`` installs a pinned
flwr into ``benchmarks/.flwr-venv`` (torch first, so the CPU wheel Consortia uses is the one installed).
The Flower App is ``benchmarks/flower_app``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.launch import Launched, wait_for_port
from flows.demo import free_port

FLWR_VERSION = "1.41.0"
VENV = Path(__file__).parent / ".flwr-venv"
APP = Path(__file__).parent / "flower_app"
INSTALL_STEPS = (["torch==2.13.0"], [f"flwr=={FLWR_VERSION}"], ["torch==2.13.0", "numpy==2.4.6"])
FEDERATION = "benchmark"


class FlowerUnavailable(RuntimeError):
    """Flower could not be installed or started here; the message says why."""


def _installed_flwr(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    found = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('flwr'))"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def ensure_flower(venv: Path = VENV) -> Path:
    """The venv's ``bin`` folder with flwr ``FLWR_VERSION`` installed (installing it on first use)."""
    if _installed_flwr(venv) == FLWR_VERSION:
        return venv / "bin"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for packages in INSTALL_STEPS:
        step = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages],
            capture_output=True,
            text=True,
        )
        if step.returncode != 0:
            errors = [line for line in step.stderr.splitlines() if "ERROR" in line] or step.stderr.splitlines()
            raise FlowerUnavailable(f"pip install {' '.join(packages)} failed: {' / '.join(errors[-3:])}")
    if (found := _installed_flwr(venv)) != FLWR_VERSION:
        raise FlowerUnavailable(f"expected flwr {FLWR_VERSION} in {venv}, found {found}")
    return venv / "bin"


def toml_pairs(values: dict[str, Any]) -> str:
    """``--run-config`` text: space-separated ``key=value`` with TOML values (strings quoted)."""
    return " ".join(f"{key}={json.dumps(value)}" for key, value in values.items())


class FlowerDeployment:
    """A SuperLink and one SuperNode per party as local processes, insecure (plain HTTP) on 127.0.0.1.

    SuperNodes dial ``fleet_port`` (a relay in front of the SuperLink, or the SuperLink itself).
    """

    def __init__(
        self, bin_dir: Path, home: Path, party_data: dict[str, Path], port: int, fleet_port: int | None = None
    ) -> None:
        self.bin_dir = bin_dir
        self.home = home
        self.party_data = party_data
        self.port = port
        self.fleet_port = fleet_port or port
        self.launched = Launched(home / "logs")
        self.environment = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FLWR_HOME": str(home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
        }
        for variable in ("VIRTUAL_ENV", "PYTHONPATH"):  # nothing of Consortia's venv leaks into Flower's
            self.environment.pop(variable, None)

    def __enter__(self) -> FlowerDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{FEDERATION}"\n\n'
            f'[superlink.{FEDERATION}]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        self.launched.__enter__()
        return self

    def start(self) -> None:
        """Start the SuperLink, then the SuperNodes; returns once the SuperLink listens."""
        superlink = self.launched.start(
            "superlink",
            [
                str(self.bin_dir / "flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--port",
                str(self.port),
            ],
            env=self.environment,
            cwd=self.home,
        )
        for name, data in self.party_data.items():
            self.launched.start(
                f"supernode-{name}",
                [
                    str(self.bin_dir / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{self.fleet_port}",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    toml_pairs({"data": str(data)}),
                ],
                env=self.environment,
                cwd=self.home,
            )
        wait_for_port(self.port, timeout_s=120, alive=superlink)

    def submit(self, run_config: dict[str, Any]) -> None:
        """``flwr run`` the app with ``run_config`` (returns once the SuperLink accepted the run)."""
        submitted = subprocess.run(
            [str(self.bin_dir / "flwr"), "run", str(APP), FEDERATION, "--run-config", toml_pairs(run_config)],
            env=self.environment,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if submitted.returncode != 0:
            raise FlowerUnavailable(f"flwr run failed: {(submitted.stdout + submitted.stderr).strip()[-800:]}")

    def wait_for_result(self, path: Path, timeout_s: float) -> dict[str, Any]:
        """The ServerApp's result file, once written."""
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Flower result after {timeout_s:.0f}s:\n{self.launched.log_tail('superlink')}")
            if (code := self.launched.processes["superlink"].poll()) is not None:
                raise FlowerUnavailable(f"SuperLink exited with {code}:\n{self.launched.log_tail('superlink')}")
            time.sleep(0.1)
        result: dict[str, Any] = json.loads(path.read_text())
        return result

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.launched.processes.items()}

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.launched.stop()
