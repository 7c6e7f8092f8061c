"""GLM sums under secure aggregation: one flat vector per party, masked, so the coordinator learns only the total.

The secure-aggregation ring holds fixed-point numbers (steps of ``2^-24``), which is too coarse for an exact
fit on an ill-conditioned design: the Newton fixed point moves by ``I^-1`` times the rounding of the score. So
each value travels in two limbs: the value itself (the codec rounds it to a multiple of ``2^-24``, and ring
sums of those are exact) and its rounding residual times ``2^48`` (rounded in its turn at ``2^-72``). The total
is ``sum(high) + sum(low) / 2^48``, as precise as float64 sums. With a range of ``±2^35`` (about 3.4e10), up to
16 parties' sums add without overflow; a party whose sums do not fit refuses instead of clipping (a clipped sum
would give a wrong fit with no sign of it).
"""

from __future__ import annotations

import numpy as np

from components.core.errors import ProtocolError
from components.core.glm.sums import GlmSums
from components.core.secagg.encoding import FixedPoint

GLM_CODEC = FixedPoint(fractional_bits=24, clip=2.0**35)
LOW_LIMB = 2.0**48


def secure_length(n_parameters: int) -> int:
    """Values in one party's masked vector: two limbs per sum."""
    return 2 * GlmSums.vector_length(n_parameters)


def secure_vector(sums: GlmSums, codec: FixedPoint = GLM_CODEC) -> np.ndarray:
    """The party's input vector for the masked sum; ``ProtocolError`` if a value is outside the codec's range."""
    vector = sums.to_vector()
    largest = float(np.max(np.abs(vector)))
    if not np.isfinite(largest) or largest > codec.clip:
        raise ProtocolError(
            f"GLM sums reach {largest:.3g}, beyond the secure codec's range of {codec.clip:.3g}", code="secagg_range"
        )
    residual = vector - codec.decode(codec.encode(vector))
    return np.concatenate([vector, residual * LOW_LIMB])


def secure_total(unmasked: np.ndarray, n_parameters: int) -> GlmSums:
    """The pooled sums from the unmasked sum of every party's ``secure_vector``."""
    half = GlmSums.vector_length(n_parameters)
    if unmasked.shape != (2 * half,):
        raise ValueError(f"a secure sums vector for {n_parameters} parameters has {2 * half} values")
    return GlmSums.from_vector(unmasked[:half] + unmasked[half:] / LOW_LIMB, n_parameters)


def check_summands(parties: int, codec: FixedPoint = GLM_CODEC) -> None:
    """The codec must add ``parties`` vectors without overflowing its ring."""
    if parties > codec.max_summands:
        raise ValueError(f"the secure GLM codec adds at most {codec.max_summands} parties' sums, not {parties}")
