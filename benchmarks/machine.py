"""Facts about the machine a benchmark ran on, recorded beside every result."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil
from pydantic import BaseModel

PACKAGES = ("torch", "numpy", "pyzmq", "prefect", "mlflow")


class MachineFacts(BaseModel):
    cpu: str
    logical_cores: int
    memory_gb: float
    os: str
    python: str
    libzmq: str
    packages: dict[str, str]
    load_average: tuple[float, float, float]

    def line(self) -> str:
        """One human line: what ran it and how busy it was."""
        one, five, fifteen = self.load_average
        return (
            f"{self.cpu}, {self.logical_cores} logical cores, {self.memory_gb:.0f} GB RAM, {self.os}, "
            f"Python {self.python}; load average at start {one:.2f} / {five:.2f} / {fifteen:.2f}"
        )


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_facts() -> MachineFacts:
    import zmq  # only for its version numbers

    return MachineFacts(
        cpu=_cpu_model(),
        logical_cores=os.cpu_count() or 1,
        memory_gb=psutil.virtual_memory().total / 2**30,
        os=platform.platform(),
        python=platform.python_version(),
        libzmq=zmq.zmq_version(),
        packages={name: _installed(name) for name in PACKAGES},
        load_average=os.getloadavg(),
    )
