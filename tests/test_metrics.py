"""The task metrics against scikit-learn's definitions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from components.ml.metrics import classification_metrics, one_vs_rest_roc_auc


def test_one_vs_rest_roc_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    rounded = np.round(rng.dirichlet(np.ones(4), size=200), 1)  # many tied scores
    proba = rounded / rounded.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=200)

    expected = roc_auc_score(labels, proba, multi_class="ovr", labels=range(4))

    assert one_vs_rest_roc_auc(labels, proba) == pytest.approx(expected, abs=1e-12)


def test_one_vs_rest_roc_auc_by_hand():
    labels = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    # class 0: scores of its rows 0.9, 0.4 vs others 0.6, 0.2 -> 3 of 4 pairs ordered; class 1 the same
    assert one_vs_rest_roc_auc(labels, proba) == pytest.approx(0.75)


def test_a_class_without_rows_has_no_roc_auc_as_in_sklearn():
    labels = np.array([0, 1, 0, 1])
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])

    metrics = classification_metrics(labels, proba, n_classes=3)
    with pytest.warns(Warning):  # sklearn: class 2 has no positive rows
        expected = roc_auc_score(labels, proba, multi_class="ovr", labels=range(3))

    assert np.isnan(expected) and np.isnan(metrics["roc_auc"])
    assert metrics["accuracy"] == 1.0


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classification_metrics_equal_sklearns_on_float32_probabilities_with_ties(n_classes):
    rng = np.random.default_rng(1)
    rounded = np.round(rng.dirichlet(np.ones(n_classes), size=300), 1).astype(np.float32) + np.float32(1e-9)
    proba = rounded / rounded.sum(axis=1, keepdims=True)  # many tied scores, some near 0 (clipped)
    labels = rng.integers(0, n_classes, size=300)

    metrics = classification_metrics(labels, proba, n_classes=n_classes)

    assert metrics["accuracy"] == accuracy_score(labels, proba.argmax(axis=1))
    clipped = np.clip(proba, 1e-7, 1.0)
    assert metrics["loss"] == pytest.approx(log_loss(labels, clipped, labels=range(n_classes)), rel=1e-6)
    auc = roc_auc_score(labels, proba[:, 1]) if n_classes == 2 else roc_auc_score(labels, proba, multi_class="ovr")
    assert metrics["roc_auc"] == pytest.approx(auc, abs=1e-12)
