"""``consortia reproduce MODEL@VERSION``: rerun a registered version's recorded run against the same parties, as a
Prefect flow, and compare the model and its metrics with the record."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

from prefect import flow

from components.adapters.checkpoints import save_json
from components.adapters.tracking import ModelRegistry
from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.errors import ModelNotFound
from components.core.ports import RegisteredVersion
from components.run.edges import workspace_edges
from components.run.federation import FederationRun
from components.run.records import ValidationResult
from components.run.reproduction import RecordedRun, Reproduction, check_same_data, compare
from components.run.summary import RoundRow, RunSummary
from components.run.sweep import NestedTracker
from flows.federation import PREFECT_TASKS, _step, drive
from flows.sweep import hold_back_model

_ROUND_HOOKS: dict[str, Callable[[RoundRow], None]] = {}  # by run id, for the command's progress lines


@_step("validate-as-recorded", retries=2)
def validate_as_recorded(run: FederationRun, recorded: RunSummary) -> ValidationResult:
    """The run's validation, then ``NotReproducible`` naming a party whose data or contract differs from the record."""
    result = run.validate()
    check_same_data(recorded, result)
    return result


def registered_version(tracking_uri: str, name: str, number: int) -> RegisteredVersion:
    for version in ModelRegistry(tracking_uri).versions(name):
        if version.version == number:
            return version
    raise ModelNotFound(f"{name} has no version {number}")


def reproduction_path(workspace: Workspace, run_id: str) -> Path:
    return workspace.root / "reproductions" / f"{run_id}.json"


@flow(name="consortia-reproduce", flow_run_name="{run_id}")
def reproduce_flow(model: str, version: int, workspace: str, run_id: str, tolerance: float) -> str:
    """Rerun version ``version`` of ``model`` as run ``run_id``; returns the path of the comparison (JSON)."""
    space = Workspace.at(workspace)
    registered = registered_version(space.tracking_uri, model, version)
    recorded = RecordedRun.of_version(space, registered)
    config = load_federation_config(recorded.config_path)
    edges = workspace_edges(space, config.name)
    tags = {"consortia.reproduces": recorded.run_id, "consortia.reproduces_version": f"{model}@{version}"}
    edges = dataclasses.replace(edges, tracker=NestedTracker(edges.tracker, tags))  # type: ignore[arg-type]
    run = FederationRun(config, space, run_id, edges=edges)
    reason = f"reproduction of {model} v{version} (run {recorded.run_id}): not registered"
    steps = dataclasses.replace(
        PREFECT_TASKS,
        validate_contracts=functools.partial(validate_as_recorded, recorded=recorded.summary),
        promote_model=functools.partial(hold_back_model, reason=reason),
    )
    drive(run, steps, _ROUND_HOOKS.get(run_id))
    params = run.checkpoints.load_global(run.recorder.final_round)
    report = compare(recorded, run.summary, params, registered, tolerance)
    return str(save_json(reproduction_path(space, run_id), report.model_dump(mode="json")))


def run_reproduction(
    model: str,
    version: int,
    workspace: Path,
    run_id: str,
    tolerance: float,
    on_round: Callable[[RoundRow], None] | None = None,
) -> Reproduction:
    """Run the reproduce flow in this process; the comparison."""
    if on_round is not None:
        _ROUND_HOOKS[run_id] = on_round
    try:
        path = reproduce_flow(model, version, str(workspace), run_id, tolerance)
    finally:
        _ROUND_HOOKS.pop(run_id, None)
    return Reproduction.model_validate_json(Path(path).read_text())
