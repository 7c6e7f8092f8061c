"""Classification metrics from labels and predicted probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score


def classification_metrics(labels: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """``accuracy``, ``roc_auc`` (one-vs-rest when multiclass) and ``loss`` (log loss)."""
    labels = np.asarray(labels)
    classes = list(range(n_classes))
    accuracy = float(accuracy_score(labels, proba.argmax(axis=1)))
    loss = float(log_loss(labels, np.clip(proba, 1e-7, 1.0), labels=classes))
    present = np.unique(labels)
    if len(present) < 2:
        roc_auc = float("nan")
    elif n_classes == 2:
        roc_auc = float(roc_auc_score(labels, proba[:, 1]))
    else:
        roc_auc = float(roc_auc_score(labels, proba, multi_class="ovr", labels=classes))
    return {"accuracy": accuracy, "roc_auc": roc_auc, "loss": loss}
