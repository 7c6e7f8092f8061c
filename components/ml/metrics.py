"""Metrics of a task from labels and predictions: classification from probabilities, regression from values.

The names are the task's (``components.core.tasks``): classification ``accuracy``, ``roc_auc``, ``loss`` (log
loss); regression ``rmse``, ``mae``, ``r2``, ``loss`` (mean squared error).
"""

from __future__ import annotations

import numpy as np

from components.core.tasks import TaskKind


def classification_metrics(labels: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """``accuracy``, ``roc_auc`` (one-vs-rest when multiclass) and ``loss`` (log loss), as scikit-learn defines
    them, computed in NumPy (the evaluation of every round: scikit-learn's input checks cost more than the maths)."""
    labels = np.asarray(labels)
    accuracy = float(np.mean(proba.argmax(axis=1) == labels)) if len(labels) else float("nan")
    loss = log_loss(labels, np.clip(proba, 1e-7, 1.0))
    present = np.unique(labels)
    if len(present) < 2 or (n_classes > 2 and len(present) < n_classes):
        roc_auc = float("nan")  # a class without rows has no one-vs-rest AUC, so neither has their mean (sklearn's)
    elif n_classes == 2:
        roc_auc = binary_roc_auc(labels == 1, proba[:, 1])
    else:
        roc_auc = one_vs_rest_roc_auc(labels, proba)
    return {"accuracy": accuracy, "roc_auc": roc_auc, "loss": loss}


def log_loss(labels: np.ndarray, proba: np.ndarray) -> float:
    """Mean ``-log p(true class)``, the probabilities clipped to ``[eps, 1 - eps]`` of their dtype (as
    ``sklearn.metrics.log_loss``)."""
    eps = np.finfo(proba.dtype).eps
    chosen = np.clip(proba[np.arange(len(labels)), labels.astype(np.intp)], eps, 1 - eps)
    return float(-np.mean(np.log(chosen)))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1 along axis 0, ties at their average rank (``scipy.stats.rankdata(values, axis=0)``)."""
    values = np.asarray(values)
    columns = values.reshape(len(values), -1)
    n, k = columns.shape
    order = np.argsort(columns, axis=0, kind="stable")
    ordered = np.take_along_axis(columns, order, axis=0).T  # one row per column, sorted
    starts = np.ones((k, n), dtype=bool)  # True where a run of equal values begins
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    flat = starts.ravel()
    first = np.flatnonzero(flat)  # every column begins a run, so no run crosses columns
    last = np.append(first[1:], flat.size) - 1
    run_rank = (first % n + last % n) / 2.0 + 1.0
    sorted_ranks = run_rank[np.cumsum(flat) - 1].reshape(k, n).T
    ranks = np.empty((n, k), dtype=np.float64)
    np.put_along_axis(ranks, order, sorted_ranks, axis=0)
    return ranks.reshape(values.shape)


def binary_roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic of the positive rows' scores, ties at average rank."""
    ranks = average_ranks(scores)
    count = int(positive.sum())
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * (len(scores) - count)))


def one_vs_rest_roc_auc(labels: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC, every class at once: the AUC of class k is the Mann-Whitney statistic of its
    rows' scores ``(rank sum - n_k (n_k + 1) / 2) / (n_k (n - n_k))``, ties at average rank (as sklearn's
    ``roc_auc_score(multi_class="ovr")``, in one ranking instead of one ROC curve per class)."""
    ranks = average_ranks(proba)
    positives = labels[:, None] == np.arange(proba.shape[1])
    count = positives.sum(axis=0)
    rank_sums = np.where(positives, ranks, 0.0).sum(axis=0)
    auc = (rank_sums - count * (count + 1) / 2) / (count * (len(labels) - count))
    return float(auc.mean())


def regression_metrics(targets: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """``rmse``, ``mae``, ``r2`` (NaN when the targets are constant) and ``loss`` (mean squared error)."""
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    pred = np.asarray(values, dtype=np.float64).reshape(-1)
    if y.shape != pred.shape:
        raise ValueError(f"{y.size} targets but {pred.size} predictions")
    if y.size == 0:
        nan = float("nan")
        return {"rmse": nan, "mae": nan, "r2": nan, "loss": nan}
    errors = pred - y
    mse = float(np.mean(errors**2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(errors**2)) / total if total > 0 else float("nan")
    return {"rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(errors))), "r2": r2, "loss": mse}


def task_metrics(task: TaskKind, labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> dict[str, float]:
    """The task's metrics: ``predictions`` are probabilities ``[n, n_classes]`` or values ``[n]``."""
    if task == "regression":
        return regression_metrics(labels, predictions)
    return classification_metrics(labels, predictions, n_classes=n_classes)
