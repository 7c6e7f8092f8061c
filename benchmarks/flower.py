"""Flower on this machine, in its own virtual environment: the deployment engine (a SuperLink, SuperNodes,
``flwr run``) in either isolation mode, and the simulation engine (Ray) behind a local SuperLink.

flwr is never a Consortia dependency (its pins clash with Prefect's): ``ensure_flower`` installs a pinned
``flwr[simulation]`` (which pins Ray) into ``benchmarks/.flwr-venv`` (torch first, so the CPU wheel Consortia
uses is the one installed). The Flower App is ``benchmarks/flower_app``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from benchmarks.launch import Launched, wait_for_port
from flows.demo import free_port

FLWR_VERSION = "1.41.0"
VENV = Path(__file__).parent / ".flwr-venv"
APP = Path(__file__).parent / "flower_app"
INSTALL_STEPS = (["torch==2.13.0"], [f"flwr[simulation]=={FLWR_VERSION}"], ["torch==2.13.0", "numpy==2.4.6"])
FEDERATION = "benchmark"
SIMULATION = "local-simulation"
Isolation = Literal["subprocess", "process"]
POLL_INTERVAL_S = 0.05  # flower-superexec's task polling (FLWR_SUPEREXEC_TASK_POLL_INTERVAL, default 1 s)


class FlowerUnavailable(RuntimeError):
    """Flower could not be installed or started here; the message says why."""


def _installed_flwr(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    found = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; m.version('ray'); print(m.version('flwr'))"],
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


def flower_environment(bin_dir: Path, home: Path) -> dict[str, str]:
    """This environment for Flower's processes: its venv first on PATH, its own FLWR_HOME, no telemetry."""
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
    }
    for variable in ("VIRTUAL_ENV", "PYTHONPATH"):  # nothing of Consortia's venv leaks into Flower's
        environment.pop(variable, None)
    return environment


class FlowerDeployment:
    """A SuperLink and one SuperNode per party as local processes, insecure (plain HTTP) on 127.0.0.1.

    SuperNodes dial ``fleet_port`` (a relay in front of the SuperLink, or the SuperLink itself). With
    ``isolation="subprocess"`` (Flower's default) the SuperLink and each SuperNode start the ServerApp or a
    ClientApp process themselves; with ``"process"`` each runs next to a long-lived ``flower-superexec``
    that does (polling for tasks every POLL_INTERVAL_S). In Flower 1.41 both launch one ``flwr-clientapp``
    process per message a SuperNode receives (the SuperExec's only local executor is ``subprocess``).
    """

    def __init__(
        self,
        bin_dir: Path,
        home: Path,
        party_data: dict[str, Path],
        port: int,
        fleet_port: int | None = None,
        isolation: Isolation = "subprocess",
    ) -> None:
        self.bin_dir = bin_dir
        self.home = home
        self.party_data = party_data
        self.port = port
        self.fleet_port = fleet_port or port
        self.isolation = isolation
        self.launched = Launched(home / "logs")
        self.environment = flower_environment(bin_dir, home)
        self.environment["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = str(POLL_INTERVAL_S)

    def __enter__(self) -> FlowerDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{FEDERATION}"\n\n'
            f'[superlink.{FEDERATION}]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        self.launched.__enter__()
        return self

    def start(self) -> None:
        """Start the SuperLink, then the SuperNodes (and their SuperExecs); returns once the SuperLink listens."""
        isolation = ["--isolation", self.isolation]
        superlink = self.launched.start(
            "superlink",
            [
                str(self.bin_dir / "flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                *isolation,
                "--port",
                str(self.port),
            ],
            env=self.environment,
            cwd=self.home,
        )
        for name, data in self.party_data.items():
            port = free_port()
            self.launched.start(
                f"supernode-{name}",
                [
                    str(self.bin_dir / "flower-supernode"),
                    "--insecure",
                    *isolation,
                    "--superlink",
                    f"127.0.0.1:{self.fleet_port}",
                    "--port",
                    str(port),
                    "--node-config",
                    toml_pairs({"data": str(data)}),
                ],
                env=self.environment,
                cwd=self.home,
            )
            if self.isolation == "process":
                self._superexec(f"superexec-{name}", port)
        wait_for_port(self.port, timeout_s=120, alive=superlink)
        if self.isolation == "process":
            self._superexec("superexec-serverapp", self.port)

    def _superexec(self, name: str, port: int) -> None:
        """A SuperExec on the runtime API at ``port`` (it takes its task type, ServerApp or ClientApp, from there)."""
        command = [str(self.bin_dir / "flower-superexec"), "--insecure", "--runtime-api-address", f"127.0.0.1:{port}"]
        self.launched.start(name, command, env=self.environment, cwd=self.home)

    def submit(self, run_config: dict[str, Any]) -> None:
        """``flwr run`` the app with ``run_config`` (returns once the SuperLink accepted the run)."""
        flwr_run(self.bin_dir, FEDERATION, run_config, self.environment, self.home)

    def wait_for_result(self, path: Path, timeout_s: float) -> dict[str, Any]:
        return wait_for_result(self.launched, path, timeout_s)

    def coordinator_pids(self) -> dict[str, int]:
        """The coordinator's processes: the SuperLink (its ServerApp is its child, or its SuperExec's)."""
        return {n: p.pid for n, p in self.launched.processes.items() if n in ("superlink", "superexec-serverapp")}

    def party_pids(self, name: str) -> dict[str, int]:
        """One party's processes: its SuperNode (and its SuperExec, which starts its ClientApps)."""
        return {n: p.pid for n, p in self.launched.processes.items() if n.endswith(f"-{name}")}

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.launched.processes.items()}

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.launched.stop()


def wait_for_result(launched: Launched, path: Path, timeout_s: float) -> dict[str, Any]:
    """The ServerApp's result file, once written (failing early if the SuperLink exits)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Flower result after {timeout_s:.0f}s:\n{launched.log_tail('superlink')}")
        if (code := launched.processes["superlink"].poll()) is not None:
            raise FlowerUnavailable(f"SuperLink exited with {code}:\n{launched.log_tail('superlink')}")
        time.sleep(0.1)
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def flwr_run(
    bin_dir: Path,
    connection: str,
    run_config: dict[str, Any],
    environment: dict[str, str],
    home: Path,
    federation_config: dict[str, Any] | None = None,
) -> None:
    """``flwr run`` the app on ``connection`` (returns once the SuperLink accepted the run)."""
    command = [str(bin_dir / "flwr"), "run", str(APP), connection, "--run-config", toml_pairs(run_config)]
    if federation_config:
        command += ["--federation-config", toml_pairs(federation_config)]
    submitted = subprocess.run(command, env=environment, cwd=home, capture_output=True, text=True, timeout=300)
    if submitted.returncode != 0:
        raise FlowerUnavailable(f"flwr run failed: {(submitted.stdout + submitted.stderr).strip()[-800:]}")


class FlowerSimulation:
    """Flower's simulation engine as ``flwr run`` uses it locally: a SuperLink in simulation mode (the one
    ``flwr run`` starts for a ``:local:`` connection, started here the same way but with a longer start-up
    timeout than the CLI's 15 s, and without installing the app's dependencies into a new environment for
    every run, which that SuperLink does by default and which took minutes here) that runs each submitted
    run in a ``flwr-simulation`` process on Ray.

    ``federation_config`` sizes the simulation (``num-supernodes``, Ray CPUs, CPUs per ClientApp).
    """

    def __init__(self, bin_dir: Path, home: Path, federation_config: dict[str, Any]) -> None:
        self.bin_dir = bin_dir
        self.home = home
        self.federation_config = federation_config
        self.port, self.control_port = free_port(), free_port()
        self.launched = Launched(home / "logs")
        self.environment = {
            **flower_environment(bin_dir, home),
            "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(self.port),
            "FLWR_LOCAL_CONTROL_API_PORT": str(self.control_port),
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def __enter__(self) -> FlowerSimulation:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{SIMULATION}"\n\n[superlink.{SIMULATION}]\naddress = ":local:"\n'
        )
        self.launched.__enter__()
        return self

    def start(self) -> None:
        """The local SuperLink, with ``flwr run``'s own command line; returns once it answers its health check."""
        superlink = self.launched.start(
            "superlink",
            [
                str(self.bin_dir / "flower-superlink"),
                "--insecure",
                "--simulation",
                "--disable-runtime-dependency-installation",  # as the deployments: the venv has the app's packages
                "--isolation",
                "subprocess",
                "--control-api-address",
                f"127.0.0.1:{self.control_port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database",
                str(self.home / "state.db"),
            ],
            env=self.environment,
            cwd=self.home,
        )
        wait_for_port(self.port, timeout_s=120, alive=superlink)

    def submit(self, run_config: dict[str, Any]) -> None:
        flwr_run(self.bin_dir, SIMULATION, run_config, self.environment, self.home, self.federation_config)

    def wait_for_result(self, path: Path, timeout_s: float) -> dict[str, Any]:
        return wait_for_result(self.launched, path, timeout_s)

    def superlink_pid(self) -> int:
        return self.launched.processes["superlink"].pid

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.launched.stop()
