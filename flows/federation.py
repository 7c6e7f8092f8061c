"""The federation run as one Prefect flow: validate -> initialise -> rounds -> value -> reward -> promote.

A promotion the policy holds for approval pauses the flow run (``flows.approval``) until a reviewer answers.

Tasks are thin wrappers over ``FederationRun`` steps and pass references (run id, round numbers,
paths) and typed records, never tensors. Steps that do I/O retry on transient errors only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.errors import BudgetExceeded, is_retryable
from components.core.gates import Approval
from components.run.edges import RunEdges
from components.run.federation import FederationRun, new_run_id
from components.run.logs import log_to_file
from components.run.records import Contributions, Rewards, RoundResult, ValidationResult
from components.run.summary import Promotion, RoundRow
from flows.approval import ask_for_approval
from flows.artifacts import publish_run_artifacts
from flows.run_hooks import HOOKS

_ROUND_HOOKS: dict[str, Callable[[RoundRow], None]] = {}  # by run id, for run_federation's progress bars
_EDGES: dict[str, RunEdges] = {}  # edges other than the workspace's, by run id (twins, in tests)
log = logging.getLogger(__name__)


def _transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only errors the error tree marks as transient."""
    try:
        state.result()
    except Exception as error:  # the task's own exception, re-raised by Prefect
        return is_retryable(error)
    return False


def _step(name: str, retries: int = 0) -> Callable[[Callable[..., Any]], Any]:
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=2,
        cache_policy=NO_CACHE,
        retry_condition_fn=_transient_only if retries else None,
    )


@_step("start-tracking", retries=2)
def start_tracking(run: FederationRun) -> str:
    return run.start_tracking()


@_step("validate-contracts", retries=2)
def validate_contracts(run: FederationRun) -> ValidationResult:
    return run.validate()


@_step("initialise-model", retries=2)
def initialise_model(run: FederationRun) -> int:
    return run.initialise()


@_step("train-round", retries=2)
def train_round(run: FederationRun, round_number: int) -> RoundResult:
    return run.train_round(round_number)


@_step("evaluate-round", retries=2)
def evaluate_round(run: FederationRun, trained: RoundResult) -> RoundRow:
    return run.evaluate_round(trained)


@_step("value-contributions", retries=2)
def value_contributions(run: FederationRun) -> Contributions:
    return run.value_contributions()


@_step("allocate-rewards", retries=2)
def allocate_rewards(run: FederationRun, contributions: Contributions) -> Rewards:
    return run.allocate_rewards(contributions)


@_step("update-reputation", retries=2)
def update_reputation(run: FederationRun, contributions: Contributions) -> dict[str, float]:
    return run.update_reputation(contributions)


@_step("promote-model", retries=2)
def promote_model(run: FederationRun) -> dict[str, Any]:
    return run.promote().model_dump()


@_step("conclude-promotion", retries=2)
def conclude_promotion(run: FederationRun, approval: Approval | None) -> dict[str, Any]:
    return run.conclude_promotion(approval).model_dump()


def await_approval(run: FederationRun, promotion: Promotion) -> Approval | None:
    """Pause the flow run for a reviewer's answer (in the flow itself: Prefect pauses flow runs, not tasks)."""
    return ask_for_approval(run.run_id, promotion, run.config.promotion.approval_timeout_s)


def no_reviewer(run: FederationRun, promotion: Promotion) -> Approval | None:
    """Outside a Prefect flow run nobody can be asked: a promotion that needs approval keeps the champion."""
    log.warning("run %s: approval required, but there is no flow run to pause for it", run.run_id)
    return None


@_step("finish-run", retries=2)
def finish_run(run: FederationRun) -> str:
    return str(run.finish("completed"))


@dataclass(frozen=True)
class Steps:
    """The run's steps as the loop below calls them: Prefect tasks in the flow, plain functions in unit tests."""

    start_tracking: Callable[[FederationRun], str]
    validate_contracts: Callable[[FederationRun], ValidationResult]
    initialise_model: Callable[[FederationRun], int]
    train_round: Callable[[FederationRun, int], RoundResult]
    evaluate_round: Callable[[FederationRun, RoundResult], RoundRow]
    value_contributions: Callable[[FederationRun], Contributions]
    allocate_rewards: Callable[[FederationRun, Contributions], Rewards]
    update_reputation: Callable[[FederationRun, Contributions], dict[str, float]]
    promote_model: Callable[[FederationRun], dict[str, Any]]
    finish_run: Callable[[FederationRun], str]
    conclude_promotion: Callable[[FederationRun, Approval | None], dict[str, Any]]
    await_approval: Callable[[FederationRun, Promotion], Approval | None]


_TASKS = (
    start_tracking,
    validate_contracts,
    initialise_model,
    train_round,
    evaluate_round,
    value_contributions,
    allocate_rewards,
    update_reputation,
    promote_model,
    finish_run,
    conclude_promotion,
)
PREFECT_TASKS = Steps(*_TASKS, await_approval=await_approval)
# the same steps without Prefect (no retries, no task runs, no reviewer to ask)
PLAIN_STEPS = Steps(*(task.fn for task in _TASKS), await_approval=no_reviewer)


def drive(run: FederationRun, steps: Steps, on_round: Callable[[RoundRow], None] | None = None) -> str:
    """Run (or resume) ``run`` step by step; returns the path of the run summary JSON.

    Tasks get the run object itself (it never leaves this process): a Prefect runner may load this module
    more than once, so no module-level registry of runs would be shared by the flow and its tasks."""
    try:
        steps.start_tracking(run)
        steps.validate_contracts(run)
        first = steps.initialise_model(run)
        for round_number in range(first, run.config.rounds + 1):
            try:
                trained = steps.train_round(run, round_number)
            except BudgetExceeded as error:  # a privacy budget ends training, not the run
                run.stop_early(str(error))
                break
            row = steps.evaluate_round(run, trained)
            if on_round is not None:
                on_round(row)
            if run.training_done:  # a GLM that has converged
                break
        contributions = steps.value_contributions(run)
        steps.allocate_rewards(run, contributions)
        steps.update_reputation(run, contributions)
        promotion = Promotion.model_validate(steps.promote_model(run))
        if promotion.awaiting_approval:
            steps.conclude_promotion(run, steps.await_approval(run, promotion))
        return steps.finish_run(run)
    except BaseException as error:
        _record_failure(run, error)
        raise
    finally:
        run.close()


@task(name="publish-artifacts", cache_policy=NO_CACHE)
def publish_artifacts(run: FederationRun) -> None:
    """The run's Prefect artifacts (rounds, contributions and rewards, promotion, MLflow run), completed or not."""
    publish_run_artifacts(run.summary, run.config.name, run.workspace.tracking_uri)


@flow(name="consortia-federation", flow_run_name="{run_id}", **HOOKS)
def federation_flow(config_path: str, workspace: str, run_id: str) -> str:
    """Run (or resume) one federation; returns the path of the run summary JSON."""
    config = load_federation_config(Path(config_path))
    run = FederationRun(config, Workspace.at(workspace), run_id, edges=_EDGES.get(run_id))
    try:
        path = drive(run, PREFECT_TASKS, _ROUND_HOOKS.get(run_id))
    except Exception:  # a failed run has artifacts too; an interrupted one (Ctrl-C, SIGTERM) stops at once
        _publish_quietly(run)
        raise
    _publish_quietly(run)
    return path


def _publish_quietly(run: FederationRun) -> None:
    """Publish the run's artifacts; a failure to do so is logged, never raised over the run's own outcome."""
    try:
        publish_artifacts(run)
    except Exception:
        log.exception("could not publish the Prefect artifacts of run %s", run.run_id)


@flow(name="consortia-scheduled-federation")
def scheduled_federation_flow(config_path: str, workspace: str) -> str:
    """One run of a schedule (``consortia schedule``): a fresh run id, then the federation flow as a subflow."""
    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)  # this runs in a process Prefect's runner started
    run_id = new_run_id(load_federation_config(Path(config_path)).name)
    log.info("scheduled run %s starts", run_id)
    return federation_flow(config_path, str(space.root), run_id)


def _record_failure(run: FederationRun, error: BaseException) -> None:
    """Mark the run failed in every store, with the error that stopped it, without hiding that error."""
    if run.summary.status in ("completed", "failed"):
        return  # finish-run got as far as writing the outcome
    try:
        run.finish("failed", f"{type(error).__name__}: {error}"[:2000])
    except Exception:
        log.exception("could not record the failure of run %s", run.run_id)


def run_federation(
    config_path: Path,
    workspace: Path,
    run_id: str,
    on_round: Callable[[RoundRow], None] | None = None,
    edges: RunEdges | None = None,
) -> Path:
    """Run the flow in this process, calling ``on_round`` after each finished round (for progress bars);
    ``edges`` replaces the workspace's stores and transport (twins, in tests)."""
    if on_round is not None:
        _ROUND_HOOKS[run_id] = on_round
    if edges is not None:
        _EDGES[run_id] = edges
    try:
        return Path(federation_flow(str(config_path), str(workspace), run_id))
    finally:
        _ROUND_HOOKS.pop(run_id, None)
        _EDGES.pop(run_id, None)
