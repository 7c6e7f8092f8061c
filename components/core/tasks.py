"""What a model is asked to do: binary or multiclass classification, or regression, and what follows from it.

A task owns its metrics, which of them are better when higher, the default metric a promotion gate
compares, and the default utility of valuation (a smooth loss: log loss, or mean squared error).
"""

from __future__ import annotations

from typing import Literal

TaskKind = Literal["binary", "multiclass", "regression"]
TASKS: tuple[TaskKind, ...] = ("binary", "multiclass", "regression")

CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "loss")  # loss = log loss
REGRESSION_METRICS = ("rmse", "mae", "r2", "loss")  # loss = mean squared error
ALL_METRICS = ("accuracy", "roc_auc", "loss", "rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"loss", "rmse", "mae"})


def metrics_of(task: TaskKind) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def default_promotion_metric(task: TaskKind) -> str:
    return "r2" if task == "regression" else "accuracy"


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def is_classification(task: TaskKind) -> bool:
    return task != "regression"
