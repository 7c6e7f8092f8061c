"""A party's validation split: a seeded, deterministic share of its rows held out of training and evaluated on.

The same rows, seed and fraction always give the same split, on any machine (numpy's PCG64 permutation), so
a resumed or reproduced run trains and evaluates on exactly the rows it did before.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class ValidationSplit(BaseModel):
    """Hold ``fraction`` of the rows (rounded up, at least one, never all) out of training, chosen by ``seed``."""

    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(gt=0, lt=1)
    seed: int = 0

    def held_out(self, rows: int) -> int:
        """How many of ``rows`` are validation rows (0 for fewer than 2 rows: one row is kept to train on)."""
        if rows < 2:
            return 0
        return min(max(math.ceil(self.fraction * rows), 1), rows - 1)

    def training_rows(self, rows: int) -> int:
        return rows - self.held_out(rows)

    def indices(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(training, validation) row indices, each in ascending order."""
        order = np.random.default_rng(self.seed).permutation(rows)
        held = self.held_out(rows)
        return np.sort(order[held:]), np.sort(order[:held])

    def describe(self) -> str:
        return f"{self.fraction:.0%} of the rows (seed {self.seed})"
