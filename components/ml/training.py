"""Local training and evaluation of a model on one party's rows (PyTorch, CPU)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from components.core.config import TrainingSpec
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.ml.metrics import classification_metrics
from components.ml.model import build_model, get_params, set_params


class LocalResult(BaseModel):
    num_examples: int
    loss: float


def train_local(
    spec: ModelSpec,
    params: Mapping[str, np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    training: TrainingSpec,
    round_number: int = 0,
) -> tuple[Params, LocalResult]:
    """Train from ``params`` for ``local_epochs`` of mini-batch SGD; return new weights and loss.

    With ``proximal_mu > 0`` the FedProx term ``mu/2 * ||w - w_global||^2`` is added to the loss.
    """
    torch.set_num_threads(1)
    model = build_model(spec)
    set_params(model, params)
    anchor = [p.detach().clone() for p in model.parameters()] if training.proximal_mu > 0 else None
    x = torch.tensor(np.asarray(features, dtype=np.float32))
    y = torch.tensor(np.asarray(labels, dtype=np.int64))
    optimiser = torch.optim.SGD(model.parameters(), lr=training.learning_rate, momentum=training.momentum)
    generator = torch.Generator().manual_seed(training.seed * 100_003 + round_number)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total, seen = 0.0, 0
    for _ in range(training.local_epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), training.batch_size):
            batch = order[start : start + training.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            if anchor is not None:
                prox = sum(torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), anchor, strict=True))
                loss = loss + training.proximal_mu / 2 * prox
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
    return get_params(model), LocalResult(num_examples=len(x), loss=total / max(seen, 1))


def predict_proba(spec: ModelSpec, params: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Class probabilities of the model with ``params`` on ``features``."""
    model = build_model(spec)
    set_params(model, params)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(np.asarray(features, dtype=np.float32)))
        return torch.softmax(logits, dim=-1).numpy()


def evaluate(
    spec: ModelSpec, params: Mapping[str, np.ndarray], features: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Accuracy, ROC AUC and log loss of the model on labelled rows."""
    return classification_metrics(labels, predict_proba(spec, params, features), n_classes=spec.n_classes)
