"""A federation across real network interfaces: the coordinator in one network namespace, the parties in another,
joined by a veth pair, so every message crosses a network device (not the loopback)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.core.config import dump_yaml, load_federation_config
from components.run.summary import RunSummary
from flows.processes import PartyProcesses
from tests.federation_helpers import consortia_command, embedded_prefect_env, make_federation

pytestmark = pytest.mark.integration

COORDINATOR_IP = "10.231.0.1"  # a /30 that exists only inside the two namespaces of one test
PARTIES_IP = "10.231.0.2"
PREFIX = 30
PORT = 5555


@dataclass(frozen=True)
class Link:
    """Two network namespaces joined by a veth pair: one end (device) in each."""

    coordinator_ns: str
    parties_ns: str
    coordinator_dev: str
    parties_dev: str


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def byte_counters(namespace: str, device: str) -> tuple[int, int]:
    """(rx_bytes, tx_bytes) of ``device`` as its own namespace sees them."""
    folder = f"/sys/class/net/{device}/statistics"
    output = ip("netns", "exec", namespace, "cat", f"{folder}/rx_bytes", f"{folder}/tx_bytes").stdout
    rx, tx = (int(line) for line in output.split())
    return rx, tx


@pytest.fixture
def link() -> Iterator[Link]:
    """Fresh namespaces with unique names, loopback and veth up; always deleted afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("needs the `ip` command (Debian package iproute2) to create network namespaces")
    tag = uuid.uuid4().hex[:8]
    pair = Link(f"consortia-coord-{tag}", f"consortia-party-{tag}", f"cxc{tag}", f"cxp{tag}")  # devices: <= 15 chars
    created: list[str] = []
    try:
        for namespace in (pair.coordinator_ns, pair.parties_ns):
            added = ip("netns", "add", namespace, check=False)
            if added.returncode != 0:
                pytest.skip(f"cannot create network namespaces (needs root or CAP_SYS_ADMIN): {added.stderr.strip()}")
            created.append(namespace)
        veth = ip("link", "add", pair.coordinator_dev, "type", "veth", "peer", "name", pair.parties_dev, check=False)
        if veth.returncode != 0:
            pytest.skip(f"cannot create a veth pair: {veth.stderr.strip()}")
        for namespace, device, address in (
            (pair.coordinator_ns, pair.coordinator_dev, COORDINATOR_IP),
            (pair.parties_ns, pair.parties_dev, PARTIES_IP),
        ):
            ip("link", "set", device, "netns", namespace)
            ip("-n", namespace, "addr", "add", f"{address}/{PREFIX}", "dev", device)
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "link", "set", device, "up")
        yield pair
    finally:
        ip("link", "del", pair.coordinator_dev, check=False)  # only left here if moving it failed
        for namespace in created:
            for pid in ip("netns", "pids", namespace, check=False).stdout.split():  # processes this test started
                os.kill(int(pid), signal.SIGKILL)
            ip("netns", "del", namespace, check=False)  # deletes the veth end inside it, and so the pair


class PartiesInNamespace(PartyProcesses):
    """Party agents started inside a network namespace (stopped like any ``PartyProcesses``)."""

    def __init__(self, namespace: str, configs: dict[str, Path], log_dir: Path) -> None:
        super().__init__(configs, log_dir)
        self.namespace = namespace

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"party-{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "party_agent"]
                + ["run", "--config", str(self.configs[name])],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self.processes[name]


def test_federation_runs_across_a_veth_link_between_namespaces(tmp_path, link):
    workspace, layout = make_federation(tmp_path / "ws", parties=2, rounds=2, min_parties=2, round_timeout_s=60)
    address = f"tcp://{COORDINATOR_IP}:{PORT}"
    config = load_federation_config(layout.federation_config)
    config.coordinator.bind = address
    dump_yaml(config, layout.federation_config)
    for path in layout.party_configs.values():
        party = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**party, "coordinator": address}, sort_keys=False))
    coordinator_rx_before, coordinator_tx_before = byte_counters(link.coordinator_ns, link.coordinator_dev)
    parties_rx_before, parties_tx_before = byte_counters(link.parties_ns, link.parties_dev)
    command = consortia_command("run", str(layout.federation_config), "--run-id", "netns", workspace=workspace.root)
    with PartiesInNamespace(link.parties_ns, layout.party_configs, workspace.logs):
        result = subprocess.run(
            ["ip", "netns", "exec", link.coordinator_ns, *command],
            capture_output=True,
            text=True,
            timeout=300,
            env=embedded_prefect_env(workspace.root),  # 127.0.0.1 inside the namespace is not the host's
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    coordinator_rx, coordinator_tx = byte_counters(link.coordinator_ns, link.coordinator_dev)
    parties_rx, parties_tx = byte_counters(link.parties_ns, link.parties_dev)
    summary = RunSummary.read(workspace.summary_path("netns"))
    assert summary.status == "completed"
    assert f"waiting for 2 parties on {address}" in result.stdout
    assert [sorted(r.participants) for r in summary.rounds] == [["alpha", "beta"]] * 2
    bytes_up = sum(r.bytes_up for r in summary.rounds)  # plaintext message sizes; the wire adds CURVE and TCP/IP
    bytes_down = sum(r.bytes_down for r in summary.rounds)
    assert bytes_up > 0 and bytes_down > 0
    up_on_wire = (coordinator_rx - coordinator_rx_before, parties_tx - parties_tx_before)
    down_on_wire = (coordinator_tx - coordinator_tx_before, parties_rx - parties_rx_before)
    assert min(up_on_wire) >= bytes_up, (up_on_wire, bytes_up)
    assert min(down_on_wire) >= bytes_down, (down_on_wire, bytes_down)
