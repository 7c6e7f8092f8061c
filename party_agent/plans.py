"""The party's desk of run plans: each plan is decided by the owner's policy, or held for the owner.

Every plan received is one file ``REQUESTS_DIR/RUN_ID.json`` (``run_id``, ``received_at``, ``status``, the plan,
the decision). ``pending`` plans wait for ``party-agent approve RUN_ID`` or ``deny RUN_ID --reason TEXT``, which
edit that file; the running agent reads it and answers the coordinator. Work for a run is done only under an
accepted plan, and within it (rounds, local epochs, model).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from components.core.config import load_yaml_model
from components.core.errors import ConfigError
from components.core.model_spec import ModelSpec
from components.core.policy import PartyPolicy, decide
from components.core.protocol.plan import PlanDecision, RunPlan

Status = Literal["pending", "accepted", "rejected"]
_STATUS: dict[str, Status] = {"accept": "accepted", "reject": "rejected", "hold": "pending"}


class PlanRequest(BaseModel):
    """One plan as the owner sees it in ``party-agent requests``."""

    run_id: str
    received_at: str
    status: Status
    plan: RunPlan
    decision: PlanDecision | None = None


class PlanDesk:
    """Decides plans against ``policy`` and keeps them in ``folder``; knows which runs may use this party's data."""

    def __init__(self, policy: PartyPolicy, folder: Path, enforce: bool = True) -> None:
        """``enforce``: refuse work for runs without an accepted plan (False only for a party without a policy
        file, which serves as before; denied and pending runs are refused either way)."""
        self.policy = policy
        self.folder = folder
        self.enforce = enforce
        self.accepted: dict[str, RunPlan] = {}

    def receive(self, plan: RunPlan, coordinator_key: str, now: datetime | None = None) -> PlanDecision | None:
        """The decision to send now, or None when the plan is held for the owner. A plan the owner already
        decided for this run (a resumed run sends it again) keeps that decision if it is the same plan."""
        earlier = self.read(plan.run_id)
        if (
            earlier is not None
            and earlier.plan == plan
            and earlier.decision is not None
            and (earlier.decision.decided_by == "person" or earlier.status == "pending")
        ):
            return self._settle(earlier)
        moment = now or datetime.now()
        decision = decide(self.policy, plan, coordinator_key, moment.time())
        status = _STATUS[decision.verdict]
        request = PlanRequest(
            run_id=plan.run_id,
            received_at=datetime.now(UTC).isoformat(timespec="seconds"),
            status=status,
            plan=plan,
            decision=decision,
        )
        self._write(request)
        return self._settle(request)

    def poll(self, run_id: str) -> PlanDecision | None:
        """The owner's decision on a held plan once made (None while it is still pending)."""
        request = self.read(run_id)
        return None if request is None else self._settle(request)

    def _settle(self, request: PlanRequest) -> PlanDecision | None:
        if request.status == "pending":
            return None
        decision = request.decision or PlanDecision(verdict="reject", reason="no decision recorded")
        if request.status == "accepted":
            self.accepted[request.run_id] = request.plan
        return decision

    def accepted_plan(self, run_id: str) -> RunPlan | None:
        """The plan this party accepted for ``run_id``, also one accepted before this agent restarted."""
        if run_id not in self.accepted and run_id:
            request = self.read(run_id)
            if request is not None and request.status == "accepted":
                self._settle(request)
        return self.accepted.get(run_id)

    def refusal(self, run_id: str) -> str | None:
        """Why this party does no work for ``run_id`` (None: it may)."""
        if self.accepted_plan(run_id) is not None:
            return None
        request = self.read(run_id) if run_id else None
        if request is not None:
            return f"run {run_id}'s plan is {request.status} here" + (
                f" ({request.decision.rule or ''}: {request.decision.reason})" if request.decision else ""
            )
        return f"no accepted plan for run {run_id!r}" if self.enforce else None

    def outside_plan(self, run_id: str, round_number: int, model: ModelSpec, local_epochs: int) -> str | None:
        """Why a training request goes beyond the plan this party accepted (None: it stays within)."""
        plan = self.accepted_plan(run_id)
        if plan is None:
            return None
        if round_number > plan.rounds:
            return f"round {round_number} is past the plan's {plan.rounds} rounds"
        if local_epochs > plan.local_epochs:
            return f"{local_epochs} local epochs, the plan said {plan.local_epochs}"
        if model != plan.model:
            return "the model differs from the plan's"
        return None

    # ---- the files ----
    def read(self, run_id: str) -> PlanRequest | None:
        path = self._path(run_id)
        return PlanRequest.model_validate_json(path.read_text()) if path.exists() else None

    def _write(self, request: PlanRequest) -> None:
        write_request(self.folder, request)

    def _path(self, run_id: str) -> Path:
        return request_path(self.folder, run_id)


def request_path(folder: Path, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ConfigError(f"not a run id: {run_id!r}")
    return folder / f"{run_id}.json"


def write_request(folder: Path, request: PlanRequest) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = request_path(folder, request.run_id)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(request.model_dump_json(indent=2))
    temporary.replace(path)  # the running agent never reads half a file


def list_requests(folder: Path, status: Status | None = None) -> list[PlanRequest]:
    """The plans in ``folder`` (only those with ``status`` if given), oldest first."""
    requests = [PlanRequest.model_validate_json(path.read_text()) for path in sorted(folder.glob("*.json"))]
    chosen = [r for r in requests if status is None or r.status == status]
    return sorted(chosen, key=lambda r: r.received_at)


def decide_by_person(folder: Path, run_id: str, approve: bool, reason: str) -> PlanRequest:
    """The owner approves or denies a pending plan (ConfigError if there is none)."""
    path = request_path(folder, run_id)
    if not path.exists():
        raise ConfigError(f"no plan for run {run_id!r} in {folder}")
    request = PlanRequest.model_validate_json(path.read_text())
    if request.status != "pending":
        raise ConfigError(f"run {run_id}'s plan is already {request.status}")
    decision = PlanDecision(
        verdict="accept" if approve else "reject",
        rule=None if approve else "owner",
        reason=reason or ("approved by the data owner" if approve else "denied by the data owner"),
        decided_by="person",
    )
    decided = request.model_copy(update={"status": "accepted" if approve else "rejected", "decision": decision})
    write_request(folder, decided)
    return decided


def plan_lines(request: PlanRequest) -> list[tuple[str, Any]]:
    """The plan as (what, value) rows for the owner to read."""
    plan = request.plan
    model = plan.model.kind + (f" {plan.model.plugin.name}=={plan.model.plugin.version}" if plan.model.plugin else "")
    privacy = f"{plan.privacy.mode} DP, noise multiplier {plan.privacy.noise_multiplier}" if plan.privacy else "none"
    return [
        ("run", plan.run_id),
        ("federation", plan.federation),
        ("model", f"{model}, task {plan.model.task}"),
        ("strategy", " > ".join(plan.strategies)),
        ("rounds", plan.rounds),
        ("local epochs", plan.local_epochs),
        ("secure aggregation", "yes" if plan.secure_aggregation else "no"),
        ("differential privacy", privacy),
        *(("sent back", line) for line in plan.sent_back),
        ("status", request.status),
        ("decision", f"{request.decision.rule or ''} {request.decision.reason}".strip() if request.decision else ""),
    ]


def load_policy(path: Path | None) -> PartyPolicy | None:
    """The owner's policy file, or None when ``party.yaml`` names none."""
    if path is None:
        return None
    policy: PartyPolicy = load_yaml_model(path, PartyPolicy)
    return policy
