"""Federated descriptive statistics of a contract's features, per party and pooled, in two passes.

Pass 1 asks every party for its figures per feature; the pooled min and max give the histogram bin edges
(``bins`` equal-width bins); pass 2 asks again with those edges. A party's suppressed feature stays visible in
the report (``"< 10"``) and is left out of that feature's pooled figures, which say whom they leave out.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, Field

from components.core.contract import Contract
from components.core.errors import ProtocolError
from components.core.federated_stats import FeatureStats, PartyStats, Suppressed, bin_edges, pool, quantiles
from components.core.params import Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import parse_body
from components.core.protocol.stats import StatsRequest
from components.run.coordinator import Coordinator
from components.run.exchanges import require_answers
from components.run.validation import refuse_contract_mismatches

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class FeatureReport(BaseModel):
    pooled: FeatureStats | None = Field(description="None when every party suppressed the feature")
    parties: dict[str, FeatureStats | Suppressed]
    left_out: list[str] = Field(default_factory=list, description="parties whose figures were suppressed")
    edges: list[float] = Field(default_factory=list)
    quantiles: dict[str, float] = Field(default_factory=dict, description="from the pooled histogram")


class StatsReport(BaseModel):
    contract: str
    created_at: str
    parties: dict[str, int] = Field(description="party -> rows it holds")
    features: dict[str, FeatureReport]


def collect_stats(
    coordinator: Coordinator,
    parties: list[str],
    contract: Contract,
    run_id: str,
    timeout_s: float,
    bins: int = 10,
) -> StatsReport:
    """Two passes of statistics requests to ``parties``; the report of every contract feature."""
    first = _ask(coordinator, parties, contract, run_id, timeout_s, {})
    edges: dict[str, list[float]] = {}
    for feature in contract.features:
        pooled = _pooled(first, feature)
        if pooled is not None and pooled.min is not None and pooled.max is not None:
            edges[feature] = bin_edges(pooled.min, pooled.max, bins).tolist()
    second = _ask(coordinator, sorted(first), contract, run_id, timeout_s, edges)
    features = {}
    for feature in contract.features:
        figures = {party: stats.features[feature] for party, stats in sorted(second.items())}
        pooled = _pooled(second, feature)
        report = FeatureReport(
            pooled=pooled,
            parties=figures,
            left_out=[party for party, f in figures.items() if isinstance(f, Suppressed)],
            edges=edges.get(feature, []),
        )
        if pooled is not None and pooled.histogram is not None:
            values = quantiles(pooled.histogram, np.asarray(report.edges), list(QUANTILES))
            report.quantiles = {f"q{round(q * 100):02d}": v for q, v in zip(QUANTILES, values, strict=True)}
        features[feature] = report
    return StatsReport(
        contract=contract.ref,
        created_at=datetime.now(UTC).isoformat(),
        parties={party: stats.rows for party, stats in sorted(second.items())},
        features=features,
    )


def _pooled(replies: dict[str, PartyStats], feature: str) -> FeatureStats | None:
    parts = [s.features[feature] for s in replies.values() if isinstance(s.features[feature], FeatureStats)]
    return pool(parts) if parts else None  # type: ignore[arg-type]


def _ask(
    coordinator: Coordinator,
    parties: list[str],
    contract: Contract,
    run_id: str,
    timeout_s: float,
    edges: dict[str, list[float]],
) -> dict[str, PartyStats]:
    def check(envelope: Envelope, _: Params) -> None:
        stats = parse_body(PartyStats, envelope.body)
        if set(stats.features) != set(contract.features):
            raise ProtocolError("statistics for other features than the contract's", code="stats")
        for name, figures in stats.features.items():
            histogram = figures.histogram if isinstance(figures, FeatureStats) else None
            if histogram is not None and len(histogram) != len(edges.get(name, [])) - 1:
                raise ProtocolError(f"a histogram of {name!r} with other bins than asked", code="stats")

    body = StatsRequest(edges=edges, contract_hash=contract.content_hash).model_dump()
    exchange = coordinator.exchange(parties, Kind.STATS, run_id, 0, body, timeout_s=timeout_s, check=check)
    refuse_contract_mismatches(exchange.errors, contract)
    require_answers(exchange, "statistics", 1)
    return {party: parse_body(PartyStats, reply.envelope.body) for party, reply in exchange.replies.items()}
