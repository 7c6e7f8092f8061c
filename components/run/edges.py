"""The edges one run talks to, chosen in one place: the workspace's real adapters, or twins in unit tests."""

from __future__ import annotations

from dataclasses import dataclass

from components.adapters.store import FederationStore
from components.adapters.tracking import ModelRegistry, RunTracker
from components.adapters.transport import RouterEndpoint
from components.adapters.versioning import MetadataRepo
from components.adapters.workspace import Workspace
from components.core.ports import MetadataPort, RegistryPort, RouterFactory, StorePort, TrackerPort


@dataclass
class RunEdges:
    """Transport, tracking, registry, federation store and metadata versioning of one run."""

    router: RouterFactory
    tracker: TrackerPort
    registry: RegistryPort
    store: StorePort
    metadata: MetadataPort


def workspace_edges(workspace: Workspace, experiment: str) -> RunEdges:
    """The real adapters on the workspace's stores (each chosen by URL: SQLite here, a server past one machine)."""
    with workspace.setting_up():  # two coordinators starting at once would race MLflow's migrations
        return RunEdges(
            router=RouterEndpoint,
            tracker=RunTracker(workspace.tracking_uri, experiment=experiment, artifact_root=workspace.mlflow_artifacts),
            registry=ModelRegistry(workspace.tracking_uri),
            store=FederationStore(workspace.store_url),
            metadata=MetadataRepo(workspace.metadata_repo, workspace.metadata_remote),
        )


def prepare_stores(workspace: Workspace) -> None:
    """Create what a new workspace's stores lack (MLflow's tables, the federation store's, the DVC repository).

    ``consortia run`` calls it while the workspace's Prefect server starts, so that a first run's MLflow
    migrations overlap the server's own instead of following them: opening the edges once creates what they lack, so
    the run's own edges open stores that exist."""
    workspace_edges(workspace, experiment="")
