"""Per-party metrics of one model and its fairness gap: how far the worst party falls below the weighted mean.

The gap is signed so that larger is worse for every metric: ``mean - worst`` when higher is better (accuracy),
``worst - mean`` when lower is better (loss, rmse); the worst party is the lowest, or the highest. It is never
negative (the weighted mean lies between the best and the worst), and 0 when every party measures the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from components.core.tasks import higher_is_better


class PartyMetrics(BaseModel):
    """One party's metrics of the model on its own rows: its validation split, or all its rows without one."""

    num_examples: int = Field(ge=0)
    metrics: dict[str, float]
    validation_split: bool = False  # True: rows the party holds out of training


class FairnessGap(BaseModel):
    """One metric across parties: the example-weighted mean, the worst party and the gap between them."""

    metric: str
    weighted_mean: float
    worst_party: str
    worst_value: float
    gap: float


class FederatedEvaluation(BaseModel):
    """Every party's metrics of the candidate, the coordinator's holdout metrics where it has a holdout, and the
    fairness gap of each metric the parties measured."""

    parties: dict[str, PartyMetrics] = Field(default_factory=dict)
    holdout: dict[str, float] | None = None
    gaps: dict[str, FairnessGap] = Field(default_factory=dict)

    def gap(self, metric: str) -> float | None:
        """The fairness gap of ``metric`` (None when no party measured it)."""
        found = self.gaps.get(metric)
        return None if found is None else found.gap


def weighted_mean(parties: Mapping[str, PartyMetrics], metric: str) -> float:
    """The example-weighted mean of ``metric`` (ValueError when no party with examples measured it)."""
    measured = [p for p in parties.values() if metric in p.metrics and p.num_examples > 0]
    total = sum(p.num_examples for p in measured)
    if total == 0:
        raise ValueError(f"no party with examples measured {metric!r}")
    return sum(p.metrics[metric] * p.num_examples for p in measured) / total


def fairness_gap(parties: Mapping[str, PartyMetrics], metric: str, higher: bool | None = None) -> FairnessGap:
    """The gap of ``metric`` (``higher``: whether higher is better; default from the metric's name).

    ``{a: 0.9 on 100 rows, b: 0.6 on 50}``, accuracy: mean 0.8, worst b, gap 0.2."""
    better = higher_is_better(metric) if higher is None else higher
    mean = weighted_mean(parties, metric)
    measured = {name: p.metrics[metric] for name, p in parties.items() if metric in p.metrics and p.num_examples}
    worst = min(measured, key=lambda name: (measured[name] if better else -measured[name], name))
    value = measured[worst]
    gap = mean - value if better else value - mean
    return FairnessGap(metric=metric, weighted_mean=mean, worst_party=worst, worst_value=value, gap=max(gap, 0.0))


def federated_evaluation(
    parties: Mapping[str, PartyMetrics], holdout: Mapping[str, float] | None, metrics: tuple[str, ...]
) -> FederatedEvaluation:
    """The evaluation of ``metrics`` over ``parties`` (gaps of the metrics at least one party measured)."""
    measured = [m for m in metrics if any(m in p.metrics and p.num_examples for p in parties.values())]
    return FederatedEvaluation(
        parties=dict(parties),
        holdout=dict(holdout) if holdout is not None else None,
        gaps={m: fairness_gap(parties, m) for m in measured},
    )
