"""Human approval of a promotion: the flow run pauses for typed input; the Prefect UI or `consortia approve` answers.

``ask_for_approval`` runs inside the federation flow: it pauses the flow run (``pause_flow_run``: the process
waits, holding its parties, until the answer or the timeout) with a ``PromotionApproval`` form whose
description lists the gates. ``answer`` finds the paused flow run named after the run id and resumes it with
a reviewer's answer (``resume_flow_run(run_input=...)``), as the Prefect UI's Resume button does.
"""

from __future__ import annotations

import logging

from prefect import pause_flow_run, resume_flow_run
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterState
from prefect.client.schemas.filters import FlowRunFilterStateType as StateTypes
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.states import Running

from components.core.gates import Approval
from components.run.summary import Promotion

log = logging.getLogger(__name__)
PAUSE_KEY = "promotion-approval"
POLL_S = 2  # how often the paused flow asks Prefect whether it was answered


class PromotionApproval(RunInput):
    """The form a reviewer fills in (Prefect UI) or sends (``consortia approve``)."""

    approve: bool
    reviewer: str = ""
    comment: str = ""


def describe(run_id: str, promotion: Promotion) -> str:
    """The markdown the Prefect UI shows above the form: what is proposed and every gate's answer."""
    gates = "\n".join(f"- {'passed' if g.passed else 'failed'} **{g.name}**: {g.reason}" for g in promotion.gates)
    return (
        f"Promote **{promotion.model_name} v{promotion.version}** (run `{run_id}`) to `{promotion.alias}`?\n\n"
        f"{gates}\n\nAnswer here or with `consortia approve {run_id} [--deny] [--comment TEXT]`."
    )


def ask_for_approval(run_id: str, promotion: Promotion, timeout_s: float) -> Approval | None:
    """Pause this flow run until a reviewer answers; None when nobody did within ``timeout_s``."""
    log.warning(
        "run %s: promotion of %s v%s is held for approval; answer in the Prefect UI or with "
        "`consortia approve %s` (or `--deny`) within %.0f s",
        run_id,
        promotion.model_name,
        promotion.version,
        run_id,
        timeout_s,
    )
    form = PromotionApproval.with_initial_data(description=describe(run_id, promotion), approve=False)
    try:
        answer = pause_flow_run(
            wait_for_input=form, timeout=max(int(timeout_s), 1), poll_interval=POLL_S, key=PAUSE_KEY
        )
    except FlowPauseTimeout:
        _running_again()
        return None
    return Approval(approve=answer.approve, reviewer=answer.reviewer, comment=answer.comment)


def _running_again() -> None:
    """Set this flow run back to Running after an unanswered pause: Prefect runs no task of a paused flow run,
    and the run still has to record its decision and finish."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)


def paused_flow_run(run_id: str) -> FlowRun | None:
    """The paused flow run of ``run_id`` (its flow run name), or None."""
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[run_id]),
                state=FlowRunFilterState(type=StateTypes(any_=[StateType.PAUSED])),
            )
        )
    return found[0] if found else None


def answer(run_id: str, approval: Approval) -> bool:
    """Resume the paused flow run of ``run_id`` with ``approval``; False when no flow run of it is paused."""
    flow_run = paused_flow_run(run_id)
    if flow_run is None:
        return False
    form = PromotionApproval(**approval.model_dump())
    resume_flow_run(flow_run.id, run_input=form.model_dump(include=set(Approval.model_fields)))
    return True
