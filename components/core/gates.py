"""The promotion gates: does a candidate model replace the current champion, and why (or why not)?

Each gate is a pure function answering one question with a ``GateResult`` (passed, and a reason a person reads);
``promotion_gates`` runs every gate the policy configures and promotes only when all pass. Approval by a person
is the last gate, answered after these (``Approval``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from components.core.fairness import FederatedEvaluation, fairness_gap

if TYPE_CHECKING:
    from components.core.config import PromotionConfig


class GateResult(BaseModel):
    """One gate's answer: ``name`` is ``threshold``, ``champion``, ``fairness`` or ``approval``."""

    name: str
    passed: bool
    reason: str


class GateDecision(BaseModel):
    """All gates' answers; ``promote`` only when every one passed. ``reason`` is the one line to show."""

    promote: bool
    reason: str
    gates: list[GateResult] = Field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [gate.reason for gate in self.gates]


class Approval(BaseModel):
    """A person's answer to a promotion held for approval."""

    approve: bool
    reviewer: str = ""
    comment: str = ""


def _beats(gain: float) -> str:
    return f"{gain:+.4f}"


def champion_gate(
    metric: str,
    candidate: float,
    champion: float | None,
    higher_is_better: bool = True,
    min_improvement: float = 0.0,
) -> GateResult:
    """Pass when there is no champion, or the candidate beats it by more than ``min_improvement``."""
    if champion is None:
        return GateResult(
            name="champion", passed=True, reason=f"no current champion; candidate {metric}={candidate:.4f}"
        )
    gain = candidate - champion if higher_is_better else champion - candidate
    if gain > min_improvement:
        reason = f"candidate {metric}={candidate:.4f} beats champion {champion:.4f} by {_beats(gain)}"
        return GateResult(name="champion", passed=True, reason=reason)
    reason = (
        f"candidate {metric}={candidate:.4f} does not beat champion {champion:.4f} "
        f"(gain {_beats(gain)}, needs > {_beats(min_improvement)}); champion kept"
    )
    return GateResult(name="champion", passed=False, reason=reason)


def threshold_gate(metric: str, candidate: float, threshold: float, higher_is_better: bool = True) -> GateResult:
    """Pass when the candidate reaches ``threshold``: at least it (higher is better), at most it (lower)."""
    passed = candidate >= threshold if higher_is_better else candidate <= threshold
    bound = "at least" if higher_is_better else "at most"
    verb = "meets" if passed else "misses"
    return GateResult(
        name="threshold",
        passed=passed,
        reason=f"candidate {metric}={candidate:.4f} {verb} the threshold ({bound} {threshold:.4f})",
    )


def fairness_gate(metric: str, gap: float | None, max_gap: float, worst: str = "") -> GateResult:
    """Pass when the fairness gap of ``metric`` is at most ``max_gap``; a gap nobody measured does not pass."""
    if gap is None:
        reason = f"no per-party {metric} to measure the fairness gap against max_fairness_gap {max_gap:.4f}"
        return GateResult(name="fairness", passed=False, reason=reason)
    passed = gap <= max_gap
    who = f" (worst party {worst})" if worst else ""
    relation = "within" if passed else "exceeds"
    reason = f"fairness gap of {metric} {gap:.4f}{who} {relation} max_fairness_gap {max_gap:.4f}"
    return GateResult(name="fairness", passed=passed, reason=reason)


def approval_gate(approval: Approval | None, timeout_s: float | None = None) -> GateResult:
    """Pass when a person approved; ``None``: nobody answered (within ``timeout_s`` if given)."""
    if approval is None:
        within = f" within {timeout_s:.0f} s" if timeout_s is not None else ""
        return GateResult(name="approval", passed=False, reason=f"approval required and none given{within}")
    who = approval.reviewer or "a reviewer"
    said = f": {approval.comment}" if approval.comment else ""
    verdict = "approved" if approval.approve else "denied"
    return GateResult(name="approval", passed=approval.approve, reason=f"{verdict} by {who}{said}")


def decision(gates: list[GateResult]) -> GateDecision:
    """Promote when every gate passed; the reason names every gate that did not (or every gate, when all did)."""
    failed = [gate for gate in gates if not gate.passed]
    shown = failed or gates
    return GateDecision(promote=not failed, reason="; ".join(gate.reason for gate in shown), gates=list(gates))


def promotion_gates(
    policy: PromotionConfig, candidate: float, champion: float | None, evaluation: FederatedEvaluation | None
) -> GateDecision:
    """Every gate ``policy`` (resolved for the task) configures, but approval: threshold, champion, fairness.

    The fairness gap is of the promotion metric, in the policy's direction, over the parties' own metrics."""
    metric, higher = str(policy.metric), bool(policy.higher_is_better)
    gates = []
    if policy.threshold is not None:
        gates.append(threshold_gate(metric, candidate, policy.threshold, higher))
    gates.append(champion_gate(metric, candidate, champion, higher, policy.min_improvement))
    if policy.max_fairness_gap is not None:
        parties = evaluation.parties if evaluation is not None else {}
        measured = any(metric in p.metrics and p.num_examples for p in parties.values())
        gap = fairness_gap(parties, metric, higher) if measured else None
        gates.append(
            fairness_gate(metric, gap.gap if gap else None, policy.max_fairness_gap, gap.worst_party if gap else "")
        )
    return decision(gates)
