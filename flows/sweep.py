"""``consortia sweep``: one Prefect flow whose trials are subflows, run one after another against the same parties
on the base config's coordinator port; the best trial is elected and promoted once, at the end."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from prefect import flow

from components.adapters.tracking import ModelRegistry, RunTracker
from components.adapters.versioning import MetadataRepo
from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.gates import Approval
from components.core.sweep import TrialResult, load_sweep_config
from components.run.edges import RunEdges, workspace_edges
from components.run.federation import FederationRun
from components.run.summary import Promotion
from components.run.sweep import TRIAL_REASON, NestedTracker, Sweep, Trial, TrialOutcome
from flows.approval import ask_for_approval
from flows.federation import PLAIN_STEPS, PREFECT_TASKS, Steps, _step, drive

log = logging.getLogger(__name__)
TrialHook = Callable[[TrialResult, Sweep], None]
_TRIAL_HOOKS: dict[str, TrialHook] = {}  # by sweep id, for the command's progress lines


@_step("hold-back-model", retries=2)
def hold_back_model(run: FederationRun, reason: str) -> dict[str, object]:
    """In place of promotion: log the final model, register nothing (``reason``: who decides instead)."""
    return run.hold_back(reason).model_dump()


# a trial registers nothing: the sweep elects one trial and promotes it
TRIAL_TASKS = dataclasses.replace(PREFECT_TASKS, promote_model=functools.partial(hold_back_model, reason=TRIAL_REASON))
PLAIN_TRIAL_STEPS = dataclasses.replace(
    PLAIN_STEPS, promote_model=functools.partial(hold_back_model.fn, reason=TRIAL_REASON)
)


def run_trial(
    trial: Trial, workspace: Workspace, tags: dict[str, str], steps: Steps, edges: RunEdges | None = None
) -> TrialOutcome:
    """One trial as a federation run whose tracking run is nested under the sweep's; its final model is logged,
    not registered."""
    config = load_federation_config(trial.config_path)
    edges = edges or workspace_edges(workspace, config.name)
    edges = dataclasses.replace(edges, tracker=NestedTracker(edges.tracker, tags))  # type: ignore[arg-type]
    run = FederationRun(config, workspace, trial.run_id, edges=edges)
    drive(run, steps)
    if run.held_back is None:
        raise RuntimeError(f"trial {trial.run_id} ended without its final model")
    return TrialOutcome(candidate=run.held_back, manifests=dict(run.summary.manifests))


def drive_sweep(
    sweep: Sweep,
    trial_runner: Callable[[Trial], TrialOutcome],
    on_trial: TrialHook | None = None,
    ask: Callable[[str, Promotion], Approval | None] = lambda _sweep_id, _promotion: None,
) -> Path:
    """Every trial in turn (a failed one is recorded and the sweep goes on), then the election and the one
    promotion (held for approval: ``ask`` answers; by default nobody, so the champion stays); returns the path of
    the sweep's record."""
    sweep.start()
    try:
        for trial in sweep.trials:
            try:
                result = sweep.finished(trial, trial_runner(trial))
            except Exception as error:  # the trial's run recorded its own failure; the sweep goes on
                log.warning("sweep %s: trial %d (%s) failed: %s", sweep.sweep_id, trial.index, trial.run_id, error)
                result = sweep.finished(trial, None, error)
            if on_trial is not None:
                on_trial(result, sweep)
        promotion = sweep.promote()
        if promotion is not None and promotion.awaiting_approval:
            sweep.conclude(ask(sweep.sweep_id, promotion))
    finally:
        path = sweep.finish()
    return path


@flow(name="consortia-sweep-trial", flow_run_name="{run_id}")
def trial_flow(config_path: str, workspace: str, run_id: str, index: int, tags: dict[str, str]) -> TrialOutcome:
    """One trial of a sweep (a subflow of ``sweep_flow``)."""
    trial = Trial(index, run_id, {}, Path(config_path))
    return run_trial(trial, Workspace.at(workspace), tags, TRIAL_TASKS)


@flow(name="consortia-sweep", flow_run_name="{sweep_id}")
def sweep_flow(sweep_path: str, workspace: str, sweep_id: str) -> str:
    """Run a sweep: its trials as subflows, then the election and promotion; returns the sweep record's path."""
    space = Workspace.at(workspace)
    config = load_sweep_config(Path(sweep_path))
    tracker = RunTracker(space.tracking_uri, experiment=load_federation_config(config.base).name)
    metadata = MetadataRepo(space.metadata_repo, space.metadata_remote)
    sweep = Sweep(sweep_id, config, space, tracker, ModelRegistry(space.tracking_uri), metadata)

    def subflow(trial: Trial) -> TrialOutcome:
        return trial_flow(str(trial.config_path), str(space.root), trial.run_id, trial.index, sweep.child_tags(trial))

    def ask(sweep_id: str, promotion: Promotion) -> Approval | None:
        return ask_for_approval(sweep_id, promotion, sweep.base.promotion.approval_timeout_s)

    return str(drive_sweep(sweep, subflow, _TRIAL_HOOKS.get(sweep_id), ask))


def run_sweep(sweep_path: Path, workspace: Path, sweep_id: str, on_trial: TrialHook | None = None) -> Path:
    """Run the sweep flow in this process, calling ``on_trial`` as each trial ends."""
    if on_trial is not None:
        _TRIAL_HOOKS[sweep_id] = on_trial
    try:
        return Path(sweep_flow(str(sweep_path), str(workspace), sweep_id))
    finally:
        _TRIAL_HOOKS.pop(sweep_id, None)
