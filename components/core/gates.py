"""The promotion gate: does a candidate model replace the current champion?"""

from __future__ import annotations

from pydantic import BaseModel


class GateDecision(BaseModel):
    promote: bool
    reason: str


def promotion_gate(
    metric: str,
    candidate: float,
    champion: float | None,
    higher_is_better: bool = True,
    min_improvement: float = 0.0,
) -> GateDecision:
    """Promote when there is no champion, or the candidate beats it by more than ``min_improvement``."""
    if champion is None:
        return GateDecision(promote=True, reason=f"no current champion; candidate {metric}={candidate:.4f}")
    gain = candidate - champion if higher_is_better else champion - candidate
    if gain > min_improvement:
        return GateDecision(
            promote=True,
            reason=f"candidate {metric}={candidate:.4f} beats champion {champion:.4f} by {gain:+.4f}",
        )
    return GateDecision(
        promote=False,
        reason=(
            f"candidate {metric}={candidate:.4f} does not beat champion {champion:.4f} "
            f"(gain {gain:+.4f}, needs > {min_improvement:+.4f}); champion kept"
        ),
    )
