"""A party's answer to a statistics request: per feature, its figures or a visible suppression (never a row)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.core.errors import ProtocolError
from components.core.federated_stats import PartyStats, feature_stats
from components.core.glm.disclosure import DisclosureRules
from components.core.protocol.bodies import parse_body
from components.core.protocol.stats import StatsRequest


def party_stats(body: dict[str, Any], frame: pd.DataFrame, features: list[str], rules: DisclosureRules) -> PartyStats:
    """Statistics of each contract feature of ``frame``; a feature with fewer than ``rules.min_rows`` present
    values is sent as ``suppressed`` only."""
    asked = parse_body(StatsRequest, body)
    unknown = sorted(set(asked.edges) - set(features))
    if unknown:
        raise ProtocolError(f"histogram edges for features the contract lacks: {unknown[:5]}", code="stats")
    figures = {}
    for feature in features:
        edges = asked.edges.get(feature)
        if edges is not None and (len(edges) < 2 or np.any(np.diff(edges) <= 0) or len(edges) > 1001):
            raise ProtocolError(f"bin edges of {feature!r} must increase (2 to 1001 of them)", code="stats")
        values = pd.to_numeric(frame[feature], errors="coerce").to_numpy(dtype=np.float64)
        array = np.asarray(edges, dtype=np.float64) if edges is not None else None
        figures[feature] = feature_stats(values, rules.min_rows, array, rules.release_extremes)
    return PartyStats(rows=len(frame), features=figures)
