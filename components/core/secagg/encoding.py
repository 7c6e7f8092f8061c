"""Fixed-point encoding of real vectors into the ring Z_{2^64} where masks are added.

A value ``x`` is clipped to ``[-clip, clip]``, scaled by ``2^fractional_bits``, rounded and stored in
two's complement as a uint64, so ring addition (wrapping uint64 addition) is integer addition.
Decoding reads the ring element as a signed int64 and divides by the scale.

Overflow bound: a sum of ``n`` encoded values decodes correctly while
``n * clip * 2^fractional_bits < 2^63``; ``max_summands`` gives that ``n``. The rounding error of one
value is at most ``2^-(fractional_bits + 1)``, of a sum of ``n`` values ``n`` times that.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

RING_BITS = 64


class FixedPoint(BaseModel):
    """Fixed-point codec; the defaults give steps of 2^-24 (about 6e-8), a range of ±32768 and room
    for 2^24 summands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fractional_bits: int = Field(default=24, ge=0, le=52)
    clip: float = Field(default=2.0**15, gt=0)

    @model_validator(mode="after")
    def _fits_the_ring(self) -> FixedPoint:
        if self.clip * 2.0**self.fractional_bits >= 2.0 ** (RING_BITS - 1):
            raise ValueError("clip * 2^fractional_bits must stay below 2^63")
        return self

    @property
    def scale(self) -> float:
        return 2.0**self.fractional_bits

    @property
    def max_summands(self) -> int:
        """How many encoded values can be added before the sum may overflow the ring."""
        largest = math.ceil(self.clip * self.scale)  # the largest magnitude one encoded value can have
        return (2 ** (RING_BITS - 1) - 1) // largest

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Real values -> uint64 ring elements (values outside ``±clip`` are clipped)."""
        clipped = np.clip(np.asarray(values, dtype=np.float64), -self.clip, self.clip)
        return np.rint(clipped * self.scale).astype(np.int64).view(np.uint64)

    def decode(self, elements: np.ndarray) -> np.ndarray:
        """uint64 ring elements (a single value or a sum of at most ``max_summands``) -> float64."""
        return np.asarray(elements, dtype=np.uint64).view(np.int64).astype(np.float64) / self.scale
