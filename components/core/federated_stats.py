"""Federated descriptive statistics: what each party computes on its own column values, and how they pool.

Per feature a party reports its count of present values, missing values, sum, mean, the sum of squared deviations
from its own mean (``m2``, so pooled variances combine exactly, Chan et al.'s parallel rule), min and max, and a
histogram over bin edges the coordinator chose (from the pooled min and max: a second pass). Every figure of a
feature backed by fewer than ``min_rows`` present values is suppressed before it leaves the party: the party
sends ``suppressed: "< 10"`` for that feature and nothing else about it, and the pooled statistics say which
parties they leave out. Quantiles come from the pooled histogram (linear within a bin: exact to one bin width),
a sketch that holds no row value. Min and max are row values: a data owner who may not release them sets
``release_extremes: false`` in its disclosure rules (the pooled min and max and the histogram then come only
from the parties that release them).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureStats(_Strict):
    """One feature at one party (or pooled): every figure is backed by ``count`` present values."""

    count: int = Field(ge=0)
    missing: int = Field(ge=0)
    sum: float
    mean: float
    m2: float = Field(ge=0, description="sum of squared deviations from the mean")
    min: float | None = None
    max: float | None = None
    histogram: list[int] | None = None

    @property
    def variance(self) -> float:
        """The sample variance (``ddof=1``, as pandas)."""
        return self.m2 / (self.count - 1) if self.count > 1 else math.nan


class Suppressed(_Strict):
    """A feature a party sends nothing about, and why (visible, never silent)."""

    suppressed: str = Field(max_length=40, description='e.g. "< 10": fewer present values than the minimum')


class PartyStats(_Strict):
    rows: int = Field(ge=0)
    features: dict[str, FeatureStats | Suppressed]


def feature_stats(
    values: np.ndarray, min_rows: int, edges: np.ndarray | None = None, release_extremes: bool = True
) -> FeatureStats | Suppressed:
    """One feature's statistics from its column (NaN = missing), or ``Suppressed`` below ``min_rows`` values."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if len(present) < min_rows:
        return Suppressed(suppressed=f"< {min_rows}")
    mean = float(present.mean())
    histogram = None
    if edges is not None:
        clipped = np.clip(present, edges[0], edges[-1])  # the edges span the pooled range; a guard, not a change
        histogram = np.histogram(clipped, bins=edges)[0].astype(int).tolist()
    return FeatureStats(
        count=len(present),
        missing=len(values) - len(present),
        sum=float(present.sum()),
        mean=mean,
        m2=float(np.square(present - mean).sum()),
        min=float(present.min()) if release_extremes else None,
        max=float(present.max()) if release_extremes else None,
        histogram=histogram,
    )


def pool(parts: list[FeatureStats]) -> FeatureStats:
    """Pooled statistics of the parties' (unsuppressed) figures for one feature."""
    count = sum(p.count for p in parts)
    total = sum(p.sum for p in parts)
    mean = total / count if count else math.nan
    m2 = sum(p.m2 + p.count * (p.mean - mean) ** 2 for p in parts)  # Chan et al.: exact in exact arithmetic
    mins = [p.min for p in parts if p.min is not None]
    maxs = [p.max for p in parts if p.max is not None]
    histograms = [p.histogram for p in parts if p.histogram is not None]
    return FeatureStats(
        count=count,
        missing=sum(p.missing for p in parts),
        sum=total,
        mean=mean,
        m2=m2,
        min=min(mins) if mins else None,
        max=max(maxs) if maxs else None,
        histogram=np.sum(histograms, axis=0).astype(int).tolist() if histograms else None,
    )


def bin_edges(low: float, high: float, bins: int) -> np.ndarray:
    """``bins`` equal-width bins spanning ``[low, high]`` (a constant feature gets a unit-wide range)."""
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def quantiles(histogram: list[int], edges: np.ndarray, probabilities: list[float]) -> list[float]:
    """Quantiles read from a histogram, linear within each bin (off by at most one bin width)."""
    counts = np.asarray(histogram, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    total = cumulative[-1]
    if total == 0:
        return [math.nan for _ in probabilities]
    return [float(np.interp(q * total, cumulative, edges)) for q in probabilities]
