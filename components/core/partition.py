"""Seeded partitioners that split row indices among parties for experiments and demos."""

from __future__ import annotations

from typing import Literal

import numpy as np

PartitionKind = Literal["iid", "dirichlet", "quantity"]


def partition_iid(n_rows: int, n_parties: int, seed: int) -> list[np.ndarray]:
    """Shuffle rows and deal them out in near-equal shares."""
    order = np.random.default_rng(seed).permutation(n_rows)
    return [np.sort(part) for part in np.array_split(order, n_parties)]


def partition_dirichlet(
    labels: np.ndarray, n_parties: int, alpha: float, seed: int, min_rows: int = 2
) -> list[np.ndarray]:
    """Label skew: each class is split among parties by proportions drawn from Dirichlet(alpha).

    Smaller ``alpha`` means more skew. Redraws until every party has at least ``min_rows`` rows.
    """
    if alpha <= 0:
        raise ValueError("alpha must be positive")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    for _ in range(1000):
        shares: list[list[int]] = [[] for _ in range(n_parties)]
        for label in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(n_parties, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(rows)).astype(int)
            for party, chunk in enumerate(np.split(rows, cuts)):
                shares[party].extend(chunk.tolist())
        if min(len(s) for s in shares) >= min_rows:
            return [np.sort(np.array(s, dtype=np.int64)) for s in shares]
    raise ValueError(f"could not give every party {min_rows} rows with alpha={alpha}")


def partition_quantity(n_rows: int, n_parties: int, alpha: float, seed: int, min_rows: int = 2) -> list[np.ndarray]:
    """Quantity skew: party sizes drawn from Dirichlet(alpha), labels mixed IID."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_rows)
    free = n_rows - min_rows * n_parties
    if free < 0:
        raise ValueError("not enough rows for the minimum per party")
    sizes = min_rows + np.floor(rng.dirichlet(np.full(n_parties, alpha)) * free).astype(int)
    sizes[-1] += n_rows - sizes.sum()
    return [np.sort(part) for part in np.split(order, np.cumsum(sizes)[:-1])]


def partition(
    kind: PartitionKind, labels: np.ndarray, n_parties: int, seed: int, alpha: float = 0.5
) -> list[np.ndarray]:
    """Dispatch to a partitioner by name."""
    if kind == "iid":
        return partition_iid(len(labels), n_parties, seed)
    if kind == "dirichlet":
        return partition_dirichlet(labels, n_parties, alpha, seed)
    if kind == "quantity":
        return partition_quantity(len(labels), n_parties, alpha, seed)
    raise ValueError(f"unknown partition {kind!r}; choose iid, dirichlet or quantity")
