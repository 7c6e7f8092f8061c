"""The workload both systems run, copied from Consortia (torch and numpy only: this runs in Flower's venv).

``MLPClassifier`` and ``train_local`` repeat components/model.py and components/training.py line for line
(same module names, same initialisation seed, same shuffling seed per round), so both systems start from
the same weights and take the same optimisation steps.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import nn


class Standardize(nn.Module):
    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class MLPClassifier(nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden: list[int]) -> None:
        super().__init__()
        self.standardize = Standardize(n_features)
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardize(x))


def build_model(n_features: int, n_classes: int, hidden: list[int], seed: int) -> MLPClassifier:
    """Freshly initialised weights; the same seed gives Consortia's initial weights."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return MLPClassifier(n_features, n_classes, hidden)
    finally:
        torch.random.set_rng_state(state)


def parse_hidden(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def load_rows(path: Path, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, file order) and labels (int64) of a CSV written by the benchmark."""
    with open(path, newline="") as handle:
        header = next(csv.reader(handle))
    values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    label_column = header.index(target)
    features = np.delete(values, label_column, axis=1).astype(np.float32)
    return features, values[:, label_column].astype(np.int64)


def train_local(
    model: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    momentum: float,
    seed: int,
    round_number: int,
) -> float:
    """Mini-batch SGD for ``epochs``; returns the mean training loss."""
    torch.set_num_threads(1)
    x = torch.tensor(features)
    y = torch.tensor(labels)
    optimiser = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    generator = torch.Generator().manual_seed(seed * 100_003 + round_number)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total, seen = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
    return total / max(seen, 1)


def evaluate(model: nn.Module, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and mean log loss on labelled rows."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(features))
        loss = float(nn.functional.cross_entropy(logits, torch.tensor(labels)))
        accuracy = float((logits.argmax(dim=1).numpy() == labels).mean())
    return {"accuracy": accuracy, "loss": loss}
