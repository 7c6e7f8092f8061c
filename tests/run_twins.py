"""A whole federation in one process: real party agents and the real run, over the edges' in-memory twins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.adapters.workspace import Workspace
from components.core.config import FederationConfig, dump_yaml, load_federation_config
from components.core.partition import PartitionKind
from components.run.edges import RunEdges
from components.twins.contracts import validate_with_schema
from components.twins.store import MemoryStore
from components.twins.tracking import MemoryRegistry, MemoryTracker
from components.twins.transport import MemoryNetwork
from components.twins.versioning import MemoryMetadata
from flows.demo import Dataset, DemoLayout, prepare_demo
from party_agent.agent import PartyAgent
from party_agent.config import load_party_config

FAST_TRAINING = {"local_epochs": 1, "batch_size": 64}


@dataclass
class TwinFederation:
    """A prepared demo workspace, its config, and the twins a run over it writes to."""

    workspace: Workspace
    layout: DemoLayout
    config_path: Path
    network: MemoryNetwork
    edges: RunEdges

    @property
    def tracker(self) -> MemoryTracker:
        return self.edges.tracker  # type: ignore[return-value]

    @property
    def store(self) -> MemoryStore:
        return self.edges.store  # type: ignore[return-value]


def twin_federation(
    root: Path,
    parties: int = 3,
    rounds: int = 3,
    *,
    dataset: Dataset = "breast_cancer",
    partition_kind: PartitionKind = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    **overrides: Any,
) -> TwinFederation:
    """Demo data, keys and configs under ``root`` (breast cancer, IID, seed 0 unless told), with fresh twins for
    every edge. ``overrides`` replace top-level config fields (``model``, ``strategy``, ...); ``training`` is
    merged into the fast defaults."""
    workspace = Workspace.at(root)
    layout = prepare_demo(
        workspace,
        parties=parties,
        rounds=rounds,
        partition_kind=partition_kind,
        alpha=alpha,
        seed=seed,
        dataset=dataset,
    )
    data = load_federation_config(layout.federation_config).model_dump(mode="json")
    data["training"].update({**FAST_TRAINING, **overrides.pop("training", {})})
    data.update({"heartbeat_timeout_s": 5, "join_timeout_s": 10, "round_timeout_s": 10, **overrides})
    config_path = dump_yaml(FederationConfig.model_validate(data), layout.federation_config)
    network = MemoryNetwork()
    return TwinFederation(workspace, layout, config_path, network, fresh_edges(network))


def fresh_edges(network: MemoryNetwork) -> RunEdges:
    """New twins of tracker, registry, store and metadata, with routers bound on ``network``."""
    tracker = MemoryTracker()
    return RunEdges(
        router=network.router,
        tracker=tracker,
        registry=MemoryRegistry(tracker),
        store=MemoryStore(),
        metadata=MemoryMetadata(),
    )


@contextmanager
def twin_parties(federation: TwinFederation, names: list[str] | None = None) -> Iterator[list[PartyAgent]]:
    """The demo's party agents (the real daemon) on threads, dialling the federation's in-memory network."""
    agents = []
    for name, path in federation.layout.party_configs.items():
        if names is None or name in names:
            agents.append(PartyAgent(load_party_config(path), federation.network.dealer, validate_with_schema))
    threads = [threading.Thread(target=agent.run, name=f"party-{i}", daemon=True) for i, agent in enumerate(agents)]
    for thread in threads:
        thread.start()
    try:
        yield agents
    finally:
        for agent in agents:
            agent.stop()
        for thread in threads:
            thread.join(timeout=5)
