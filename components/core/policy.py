"""A data owner's policy: what may be computed on its data. ``decide`` checks a run plan against it.

Every rule is one field of ``PartyPolicy``; an unset rule allows anything. A plan that breaks a rule is
rejected with that rule's name; a plan that breaks none is accepted, or held for a person to approve
when ``approval`` is ``manual``. Pure: the clock is an argument.
``max_concurrent_runs`` is no plan rule: it bounds how many runs' requests the agent works on at once, and the
requests of further runs wait their turn (``party_agent.agent``); a plan is never refused for it.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.core.protocol.bodies import PrivacyBudget
from components.core.protocol.plan import PlanDecision, RunPlan
from components.core.tasks import TaskKind

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class PartyPolicy(BaseModel):
    """The rules of one party (``policy.yaml`` next to ``party.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    coordinators: list[str] | None = Field(default=None, description="coordinator public keys this party serves")
    federations: list[str] | None = Field(default=None, description="federation names this party serves")
    model_kinds: list[Literal["mlp", "layers", "plugin"]] | None = None
    plugins: list[str] | None = Field(default=None, description="allowed plug-ins: NAME or NAME==VERSION")
    strategies: list[str] | None = Field(default=None, description="allowed strategies, wrappers included")
    tasks: list[TaskKind] | None = None
    max_rounds: int | None = Field(default=None, ge=1)
    max_local_epochs: int | None = Field(default=None, ge=1)
    max_concurrent_runs: int | None = Field(
        default=None,
        ge=1,
        description="runs whose requests are worked on at once (default: the cores); further runs' requests wait "
        "their turn, in arrival order",
    )
    require_secure_aggregation: bool = False
    require_dp: bool = False
    min_noise_multiplier: float | None = Field(default=None, ge=0)
    privacy_budget: PrivacyBudget | None = Field(
        default=None, description="the most epsilon a run may spend here: a run without DP is rejected"
    )
    training_hours: list[str] | None = Field(
        default=None, description="local times training may happen, e.g. ['20:00-06:00'] (a window may wrap)"
    )
    approval: Literal["auto", "manual"] = Field(
        default="auto", description="manual: a plan that passes every rule waits for `party-agent approve`"
    )

    @field_validator("training_hours")
    @classmethod
    def _windows(cls, value: list[str] | None) -> list[str] | None:
        for window in value or []:
            if not _WINDOW.match(window):
                raise ValueError(f"training window {window!r} is not HH:MM-HH:MM")
        return value


def within_hours(windows: list[str] | None, now: time) -> bool:
    """True if ``now`` is inside one of ``windows`` (``HH:MM-HH:MM``, end excluded; ``22:00-06:00`` wraps)."""
    if windows is None:
        return True
    for window in windows:
        start, end = (time.fromisoformat(part) for part in window.split("-"))
        if (start <= now < end) if start <= end else (now >= start or now < end):
            return True
    return False


def _plugin_allowed(allowed: list[str], name: str, version: str) -> bool:
    return name in allowed or f"{name}=={version}" in allowed


def broken_rule(policy: PartyPolicy, plan: RunPlan, coordinator_key: str, now: time) -> tuple[str, str] | None:
    """The first rule ``plan`` breaks and why, or None; ``coordinator_key``: the key of the coordinator that sent
    the plan."""
    model = plan.model
    plugin = f"{model.plugin.name}=={model.plugin.version}" if model.plugin else ""
    checks: list[tuple[str, bool, str]] = [
        (
            "coordinators",
            policy.coordinators is None or coordinator_key in policy.coordinators,
            f"coordinator {coordinator_key[:8]}... is not one this party serves",
        ),
        (
            "federations",
            policy.federations is None or plan.federation in policy.federations,
            f"federation {plan.federation!r} is not one of {policy.federations}",
        ),
        (
            "model_kinds",
            policy.model_kinds is None or model.kind in policy.model_kinds,
            f"model kind {model.kind!r} is not one of {policy.model_kinds}",
        ),
        (
            "plugins",
            policy.plugins is None
            or model.plugin is None
            or _plugin_allowed(policy.plugins, model.plugin.name, model.plugin.version),
            f"plug-in {plugin} is not one of {policy.plugins}",
        ),
        (
            "strategies",
            policy.strategies is None or set(plan.strategies) <= set(policy.strategies),
            f"strategies {sorted(set(plan.strategies) - set(policy.strategies or []))} are not allowed",
        ),
        (
            "tasks",
            policy.tasks is None or model.task in policy.tasks,
            f"task {model.task!r} is not one of {policy.tasks}",
        ),
        (
            "max_rounds",
            policy.max_rounds is None or plan.rounds <= policy.max_rounds,
            f"{plan.rounds} rounds, at most {policy.max_rounds} allowed",
        ),
        (
            "max_local_epochs",
            policy.max_local_epochs is None or plan.local_epochs <= policy.max_local_epochs,
            f"{plan.local_epochs} local epochs, at most {policy.max_local_epochs} allowed",
        ),
        (
            "require_secure_aggregation",
            not policy.require_secure_aggregation or plan.secure_aggregation,
            "this party requires secure aggregation and the run does not use it",
        ),
        (
            "require_dp",
            not policy.require_dp or plan.privacy is not None,
            "this party requires differential privacy and the run's strategy has none",
        ),
        (
            "min_noise_multiplier",
            policy.min_noise_multiplier is None
            or (plan.privacy is not None and plan.privacy.noise_multiplier >= policy.min_noise_multiplier),
            f"noise multiplier {plan.privacy.noise_multiplier if plan.privacy else 'none'}, "
            f"at least {policy.min_noise_multiplier} required",
        ),
        (
            "privacy_budget",
            policy.privacy_budget is None or plan.privacy is not None,
            f"this party's privacy budget is epsilon {policy.privacy_budget.epsilon if policy.privacy_budget else ''}"
            " and the run is not differentially private",
        ),
        (
            "training_hours",
            within_hours(policy.training_hours, now),
            f"{now:%H:%M} is outside the training hours {policy.training_hours}",
        ),
    ]
    for rule, holds, why in checks:
        if not holds:
            return rule, why
    return None


def decide(policy: PartyPolicy, plan: RunPlan, coordinator_key: str, now: time) -> PlanDecision:
    """Reject naming the broken rule; otherwise accept, or hold for a person under ``approval: manual``."""
    broken = broken_rule(policy, plan, coordinator_key, now)
    if broken is not None:
        return PlanDecision(verdict="reject", rule=broken[0], reason=broken[1])
    if policy.approval == "manual":
        return PlanDecision(verdict="hold", reason="waiting for the data owner's approval")
    return PlanDecision(verdict="accept", reason="the plan keeps every rule of this party's policy")
