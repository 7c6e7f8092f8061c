"""The run plan: sent to every party before any work on its data; the parties that refuse it are left out,
and a run refused by so many that fewer than ``min_parties`` remain fails before any training."""

from __future__ import annotations

import math

from components.core.config import FederationConfig, StrategyConfig
from components.core.errors import PolicyRefusal
from components.core.model_spec import ModelSpec
from components.core.params import Layout
from components.core.protocol import Kind
from components.core.protocol.bodies import parse_body
from components.core.protocol.plan import PlanDecision, PlannedPrivacy, RunPlan
from components.core.strategies import PrivacyAccount
from components.core.tasks import metrics_of
from components.run.coordinator import Coordinator

HEARTBEATS_SENT = "every few seconds: heartbeats (busy, run and round, cores, memory, CPU use, library versions)"


def strategy_chain(strategy: StrategyConfig) -> list[str]:
    """The strategy and every inner one, outermost first (``clipping > dp > fedavg``)."""
    names = [strategy.name]
    options = strategy.options
    while "inner" in options:
        names.append(str(options["inner"]))
        options = options.get("inner_options") or {}
    return names


def sent_back(config: FederationConfig, spec: ModelSpec, layout: Layout, privacy: PrivacyAccount | None) -> list[str]:
    """What leaves a party in this run, one line each (the README's list, for this run's settings)."""
    parameters = sum(math.prod(shape) for shape, _ in layout.values())
    if config.model.kind == "glm":
        update = (
            f"each Newton step: the sums of the log-likelihood's gradient ({parameters} values) and information "
            f"matrix ({parameters}x{parameters}), the deviance and the row count, within this party's disclosure rules"
        )
        if config.secure_aggregation.enabled:
            update += "; masked: the coordinator learns only the sums over parties"
    elif config.secure_aggregation.enabled:
        update = (
            f"each round: a masked vector of the model update ({parameters} values); "
            "the coordinator learns only the sum"
        )
    else:
        update = f"each round: the model update, {parameters} parameters in {len(layout)} tensors"
        if privacy is not None and privacy.mode == "local":
            update += f", clipped and noised here first (noise multiplier {privacy.noise_multiplier})"
    lines = [
        "once: the contract-validation summary (which expectations passed, never a value) and the dataset "
        "manifest (content hash, row count, contract column names and dtypes)",
        "once: the row count and per-feature sums and sums of squares (to scale inputs)",
        update,
        "each round: the example count, seconds and the train_loss metric",
    ]
    metrics = ", ".join(metrics_of(spec.task))
    split = config.evaluation.validation
    rows = (
        f"validation rows ({split.describe()}, held out of training)"
        if split is not None
        else "rows (its validation split, where its party.yaml holds one out of training)"
    )
    if config.holdout is None:
        lines.append(f"each round: {metrics} of the global model on this party's {rows}")
    elif config.evaluation.parties:
        lines.append(f"once, at the end: {metrics} of the final model on this party's {rows}")
    lines.append(HEARTBEATS_SENT)
    return lines


def run_plan(
    config: FederationConfig, spec: ModelSpec, layout: Layout, privacy: PrivacyAccount | None, run_id: str
) -> RunPlan:
    planned = (
        PlannedPrivacy(mode=privacy.mode, noise_multiplier=privacy.noise_multiplier, clip_norm=privacy.clip_norm)
        if privacy is not None
        else None
    )
    return RunPlan(
        run_id=run_id,
        federation=config.name,
        model=spec,
        strategies=strategy_chain(config.strategy),
        rounds=config.rounds,
        local_epochs=config.training.local_epochs,
        secure_aggregation=config.secure_aggregation.enabled,
        privacy=planned,
        sent_back=sent_back(config, spec, layout, privacy),
        validation=config.evaluation.validation,
    )


def statistics_plan(config: FederationConfig, spec: ModelSpec, layout: Layout, run_id: str, bins: int) -> RunPlan:
    """The plan of a ``consortia stats`` request: no training, one answer of descriptive statistics."""
    plan = run_plan(config, spec, layout, None, run_id)
    sent = [
        f"once: per contract feature, count, missing count, sum, mean, variance, min and max and a {bins}-bin "
        "histogram of this party's rows, each suppressed ('< N') where fewer rows than the disclosure minimum back it",
        HEARTBEATS_SENT,
    ]
    return plan.model_copy(update={"purpose": "statistics", "rounds": 1, "sent_back": sent})


def agree(coordinator: Coordinator, parties: list[str], plan: RunPlan, timeout_s: float) -> dict[str, PlanDecision]:
    """Every party's decision on ``plan`` (a held plan is waited for up to ``timeout_s``; silence or an error
    counts as a refusal)."""
    body = plan.model_dump(mode="json")
    exchange = coordinator.exchange(parties, Kind.PLAN, plan.run_id, 0, body, timeout_s=timeout_s)
    decisions = {party: parse_body(PlanDecision, reply.envelope.body) for party, reply in exchange.replies.items()}
    for party, error in exchange.errors.items():
        decisions[party] = PlanDecision(verdict="reject", rule="error", reason=error[:2000])
    for party in exchange.missing:
        decisions[party] = PlanDecision(
            verdict="reject", rule="no answer", reason=f"no decision within {timeout_s:.0f}s (held and not approved?)"
        )
    return decisions


def require_acceptance(decisions: dict[str, PlanDecision], min_parties: int) -> None:
    """PolicyRefusal naming each party's decision when fewer than ``min_parties`` accepted the plan."""
    accepted = [party for party, decision in decisions.items() if decision.verdict == "accept"]
    if len(accepted) < min_parties:
        raise PolicyRefusal(
            f"the run plan was accepted by {len(accepted)} parties, min_parties is {min_parties}: "
            + "; ".join(f"{party}: {describe(decision)}" for party, decision in sorted(decisions.items()))
        )


def describe(decision: PlanDecision) -> str:
    """``reject (max_rounds): 20 rounds, at most 10 allowed``."""
    rule = f" ({decision.rule})" if decision.rule else ""
    return f"{decision.verdict}{rule}: {decision.reason}" if decision.reason else f"{decision.verdict}{rule}"
