"""What model every party builds: the family and its shape, sent in every request."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelSpec(BaseModel):
    """What to build: an MLP from ``n_features`` inputs to ``n_classes`` logits."""

    kind: str = "mlp"
    n_features: int = Field(gt=0)
    n_classes: int = Field(ge=2)
    hidden: list[int] = Field(default_factory=lambda: [32])
    seed: int = 0
