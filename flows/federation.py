"""The federation run as one Prefect flow: validate -> initialise -> rounds -> value -> promote.

Tasks are thin wrappers over ``FederationSession`` steps and pass references (run id, round
numbers, paths), never tensors. Steps that talk to parties retry on transient errors only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.errors import BudgetExceeded, is_retryable
from components.run.logs import log_to_file
from components.run.session import FederationSession, new_run_id
from components.run.summary import RoundRow

_SESSIONS: dict[str, FederationSession] = {}
_ROUND_HOOKS: dict[str, Callable[[RoundRow], None]] = {}
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


@_step("start-tracking")
def start_tracking(run_id: str) -> str:
    return _SESSIONS[run_id].start_tracking()


@_step("validate-contracts", retries=2)
def validate_contracts(run_id: str) -> dict[str, bool]:
    return {party: s["success"] for party, s in _SESSIONS[run_id].validate().items()}


@_step("initialise-model", retries=2)
def initialise_model(run_id: str) -> int:
    return _SESSIONS[run_id].initialise()


@_step("train-round", retries=2)
def train_round(run_id: str, round_number: int) -> str:
    return str(_SESSIONS[run_id].train_round(round_number))


@_step("evaluate-round", retries=1)
def evaluate_round(run_id: str, round_number: int) -> RoundRow:
    return _SESSIONS[run_id].evaluate_round(round_number)


@_step("value-contributions", retries=1)
def value_contributions(run_id: str) -> dict[str, float]:
    return _SESSIONS[run_id].value_contributions()


@_step("allocate-rewards")
def allocate_rewards(run_id: str) -> dict[str, float]:
    return _SESSIONS[run_id].allocate_rewards()


@_step("update-reputation")
def update_reputation(run_id: str) -> dict[str, float]:
    return _SESSIONS[run_id].update_reputation()


@_step("promote-model")
def promote_model(run_id: str) -> dict[str, Any]:
    return _SESSIONS[run_id].promote().model_dump()


@flow(name="consortia-federation", flow_run_name="{run_id}")
def federation_flow(config_path: str, workspace: str, run_id: str) -> str:
    """Run (or resume) one federation; returns the path of the run summary JSON."""
    config = load_federation_config(Path(config_path))
    session = FederationSession(config, Workspace.at(workspace), run_id)
    _SESSIONS[run_id] = session
    try:
        start_tracking(run_id)
        validate_contracts(run_id)
        first = initialise_model(run_id)
        for round_number in range(first, config.rounds + 1):
            try:
                train_round(run_id, round_number)
            except BudgetExceeded as error:  # a privacy budget ends training, not the run
                session.stop_early(str(error))
                break
            row = evaluate_round(run_id, round_number)
            if (hook := _ROUND_HOOKS.get(run_id)) is not None:
                hook(row)
        value_contributions(run_id)
        allocate_rewards(run_id)
        update_reputation(run_id)
        promote_model(run_id)
        return str(session.finish("completed"))
    except BaseException:
        _record_failure(session)
        raise
    finally:
        session.close()
        _SESSIONS.pop(run_id, None)


@flow(name="consortia-scheduled-federation")
def scheduled_federation_flow(config_path: str, workspace: str) -> str:
    """One run of a schedule (``consortia schedule``): a fresh run id, then the federation flow as a subflow."""
    space = Workspace.at(workspace)
    log_to_file(space.coordinator_log)  # this runs in a process Prefect's runner started
    run_id = new_run_id(load_federation_config(Path(config_path)).name)
    log.info("scheduled run %s starts", run_id)
    return federation_flow(config_path, str(space.root), run_id)


def _record_failure(session: FederationSession) -> None:
    """Mark the run failed in every store without hiding the error that stopped it."""
    try:
        session.finish("failed")
    except Exception:
        log.exception("could not record the failure of run %s", session.run_id)


def run_federation(
    config_path: Path,
    workspace: Path,
    run_id: str,
    on_round: Callable[[RoundRow], None] | None = None,
) -> Path:
    """Run the flow in this process, calling ``on_round`` after each finished round (for progress bars)."""
    if on_round is not None:
        _ROUND_HOOKS[run_id] = on_round
    try:
        return Path(federation_flow(str(config_path), str(workspace), run_id))
    finally:
        _ROUND_HOOKS.pop(run_id, None)
