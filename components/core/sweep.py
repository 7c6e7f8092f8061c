"""A sweep: many runs of one federation over a grid or a random sample of strategy and training settings.

``SweepConfig`` is what an MLOps engineer writes (``sweep.yaml``); ``trials`` expands it into one set of
overrides per run (dotted paths into the federation config, e.g. ``training.learning_rate``);
``apply_overrides`` makes each run's federation config; ``elect`` picks the best finished trial.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from components.core.config import FederationConfig, describe_errors, load_yaml_model, resolve
from components.core.errors import ConfigError

SWEEPABLE = ("strategy", "training", "model", "rounds")  # the roots a sweep may change; parties stay the same


class Range(BaseModel):
    """Random search only: a value drawn uniformly from [low, high] (on a log scale with ``log``; whole numbers
    with ``integer``)."""

    model_config = ConfigDict(extra="forbid")

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low={self.low} must be below high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self

    def draw(self, rng: np.random.Generator) -> float | int:
        if self.integer:
            return int(rng.integers(math.ceil(self.low), math.floor(self.high) + 1))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))


Overrides = dict[str, Any]  # dotted path -> value


class SweepConfig(BaseModel):
    """``base``: the federation config every trial starts from (relative to the sweep file); ``parameters``:
    dotted paths under strategy, training, model or rounds, each a list of values (grid and random) or a
    ``Range`` (random); ``metric``: the held-out metric that elects the best trial (default: the base's
    promotion metric)."""

    model_config = ConfigDict(extra="forbid")

    base: Path
    search: Literal["grid", "random"] = "grid"
    trials: int | None = Field(default=None, ge=1, description="random: how many trials (a grid runs every one)")
    seed: int = 0
    parameters: dict[str, list[Any] | Range] = Field(min_length=1)
    metric: str | None = None
    higher_is_better: bool | None = Field(default=None, description="default: from the metric (loss: lower)")

    @field_validator("base")
    @classmethod
    def _relative_to_file(cls, base: Path, info: ValidationInfo) -> Path:
        folder = (info.context or {}).get("base")
        return resolve(base, folder) if folder is not None else base  # type: ignore[return-value]

    @field_validator("parameters")
    @classmethod
    def _sweepable(cls, parameters: dict[str, list[Any] | Range]) -> dict[str, list[Any] | Range]:
        for path, values in parameters.items():
            root = path.split(".")[0]
            if root not in SWEEPABLE or not all(path.split(".")):
                raise ValueError(f"{path!r}: a sweep changes only paths under [{', '.join(SWEEPABLE)}]")
            if isinstance(values, list) and not values:
                raise ValueError(f"{path!r} has no values")
        return parameters

    @model_validator(mode="after")
    def _search(self) -> SweepConfig:
        ranges = [path for path, values in self.parameters.items() if isinstance(values, Range)]
        if self.search == "grid" and ranges:
            raise ValueError(f"a grid needs a list of values for every parameter; ranges are for random: {ranges}")
        if self.search == "grid" and self.trials is not None:
            raise ValueError("trials is for random search; a grid runs every combination")
        if self.search == "random" and self.trials is None:
            raise ValueError("random search needs trials: how many runs to draw")
        return self

    def trials_overrides(self) -> list[Overrides]:
        """One set of overrides per trial: every combination in the order written (grid), or ``trials`` draws
        seeded by ``seed`` (random; the same file gives the same trials)."""
        paths = list(self.parameters)
        if self.search == "grid":
            grids = [self.parameters[path] for path in paths]
            return [dict(zip(paths, combination, strict=True)) for combination in itertools.product(*grids)]  # type: ignore[arg-type]
        rng = np.random.default_rng(self.seed)
        return [{path: _draw(self.parameters[path], rng) for path in paths} for _ in range(self.trials or 0)]


def _draw(values: list[Any] | Range, rng: np.random.Generator) -> Any:
    return values.draw(rng) if isinstance(values, Range) else values[int(rng.integers(len(values)))]


def load_sweep_config(path: Path) -> SweepConfig:
    config: SweepConfig = load_yaml_model(path, SweepConfig)
    return config


def apply_overrides(base: FederationConfig, overrides: Overrides) -> FederationConfig:
    """``base`` with each dotted path set to its value, validated as a federation config (``ConfigError``
    naming the trial's mistakes)."""
    data = base.model_dump(mode="json")
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = value
    try:
        return FederationConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"sweep trial {describe_errors(describe(overrides), error)}") from None


def describe(overrides: Overrides) -> str:
    """``training.learning_rate=0.05 rounds=2``: a trial as one line."""
    return " ".join(f"{path}={_shown(value)}" for path, value in overrides.items())


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return str(value)


class TrialResult(BaseModel):
    """One trial as the sweep saw it end: its run, its held-out metrics, or why it failed."""

    index: int
    run_id: str
    overrides: Overrides
    status: Literal["completed", "failed"]
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None

    def value(self, metric: str) -> float | None:
        found = self.metrics.get(metric)
        return None if self.status != "completed" or found is None or not math.isfinite(found) else found


def elect(results: list[TrialResult], metric: str, higher_is_better: bool) -> TrialResult | None:
    """The completed trial with the best ``metric`` (the earliest among equals); None when none completed."""
    scored = [(value, result) for result in results if (value := result.value(metric)) is not None]
    if not scored:
        return None
    best = scored[0]
    for value, result in scored[1:]:
        if (value > best[0]) if higher_is_better else (value < best[0]):
            best = (value, result)
    return best[1]
