"""The workspace: one folder holding every store a single machine needs (default ``./.consortia``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from components.adapters.prefect_server import WorkspaceServer
from components.adapters.prefect_server import wanted as server_wanted

DEFAULT_WORKSPACE = Path(".consortia")
PREFECT_OWNER_VARIABLE = "CONSORTIA_PREFECT_OWNER"  # marks an embedded Prefect server with its coordinator's pid
ACTIVATED_VARIABLE = "CONSORTIA_PREFECT_WORKSPACE_URL"  # the workspace server's URL that activate() exported


def with_installed_driver(url: str) -> str:
    """A database URL with the driver Consortia installs: ``postgresql://`` would ask SQLAlchemy (and MLflow)
    for psycopg2, so it becomes ``postgresql+psycopg://``; other URLs are kept as given."""
    return f"postgresql+psycopg://{url.removeprefix('postgresql://')}" if url.startswith("postgresql://") else url


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, root: Path | str | None = None) -> Workspace:
        chosen = Path(root or os.environ.get("CONSORTIA_WORKSPACE", DEFAULT_WORKSPACE)).resolve()
        return cls(chosen)

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def tracking_uri(self) -> str:
        return with_installed_driver(os.environ.get("CONSORTIA_TRACKING_URI") or f"sqlite:///{self.mlflow_db}")

    @property
    def federation_db(self) -> Path:
        return self.root / "federation.db"

    @property
    def store_url(self) -> str:
        return with_installed_driver(os.environ.get("CONSORTIA_STORE_URL") or f"sqlite:///{self.federation_db}")

    @property
    def metadata_repo(self) -> Path:
        return self.root / "metadata"

    @property
    def metadata_remote(self) -> Path:
        return self.root / "metadata-remote"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Held while a process opens the workspace's stores, creating what is missing (MLflow's migrations, the
        store's tables, the DVC repository): coordinators that start at once in one workspace take turns."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / ".setup.lock"):
            yield

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def coordinator_log(self) -> Path:
        return self.logs / "coordinator.log"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def stats(self) -> Path:
        """Federated statistics reports (``consortia stats``), one per contract version."""
        return self.root / "stats"

    @property
    def parties(self) -> Path:
        return self.root / "parties"

    def summary_path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def create(self) -> Workspace:
        for folder in (
            self.root,
            self.prefect_home,
            self.mlflow_artifacts,
            self.checkpoints,
            self.logs,
            self.runs,
            self.metadata_repo,
            self.metadata_remote,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def prefect_environment(self) -> dict[str, str]:
        """Environment that points a local (ephemeral) Prefect at this workspace; set before importing prefect."""
        return {
            "PREFECT_HOME": str(self.prefect_home),
            PREFECT_OWNER_VARIABLE: str(os.getpid()),  # inherited by the server: tells a later command it is orphaned
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # the local API server starts slowly on a busy machine; the default 20 s is too tight
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": os.environ.get(
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"
            ),
            "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        }

    def prefect_server(self) -> WorkspaceServer:
        """The workspace's long-lived Prefect server (started on first use, see prefect_server.py)."""
        return WorkspaceServer(self.prefect_home, self.logs / "prefect-server.log")

    def activate(self) -> None:
        """Create the folders and export Prefect settings: PREFECT_API_URL of the workspace's Prefect server
        (started if it is not running; ``prefect_ready`` waits for it) unless one is set or
        CONSORTIA_PREFECT_SERVER=ephemeral chose Prefect's temporary per-process server; PREFECT_HOME only
        without a server of the user's own."""
        self.create()
        environment = self.prefect_environment()
        if os.environ.get("PREFECT_API_URL"):
            environment.pop("PREFECT_HOME")
        elif server_wanted():
            environment["PREFECT_API_URL"] = self.prefect_server().begin().url
            environment[ACTIVATED_VARIABLE] = environment["PREFECT_API_URL"]
        os.environ.update(environment)

    def prefect_ready(self) -> None:
        """Wait until the workspace's Prefect server that ``activate`` started answers (no-op otherwise): call
        it after the imports, which overlap the server's start-up, and before the first flow."""
        if os.environ.get(ACTIVATED_VARIABLE) and os.environ.get(ACTIVATED_VARIABLE) == os.environ.get(
            "PREFECT_API_URL"
        ):
            self.prefect_server().wait()
