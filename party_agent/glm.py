"""A party's answer to a GLM sums request: its disclosure rules first, then sums of its own rows (never a row).

The party builds its design matrix from its features and the pooled standardisation the coordinator sent,
computes the sums at the coefficients it was sent, and returns them as one float64 vector, or, under secure
aggregation, as a masked vector whose sum alone the coordinator can read (the agent masks it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.core import standardization
from components.core.errors import ProtocolError
from components.core.glm.disclosure import DisclosureRules, check_disclosure
from components.core.glm.family import family
from components.core.glm.sums import GlmSums, design_matrix, local_sums
from components.core.params import Params
from components.core.protocol.glm import GlmSumsReply, GlmSumsRequest


def glm_sums(
    asked: GlmSumsRequest, tensors: Params, features: np.ndarray, labels: np.ndarray, rules: DisclosureRules
) -> GlmSums:
    """The sums of this party's rows; ``DisclosureRefused`` naming the rule a request breaks."""
    n_features = features.shape[1]
    expected = {"beta": (n_features + 1,), standardization.MEAN: (n_features,), standardization.SCALE: (n_features,)}
    for name, shape in expected.items():
        if name not in tensors or tuple(tensors[name].shape) != shape:
            raise ProtocolError(f"a GLM sums request needs tensor {name!r} of shape {list(shape)}", code="tensor")
        if not np.all(np.isfinite(tensors[name])):
            raise ProtocolError(f"tensor {name!r} holds non-finite values", code="tensor")
    check_disclosure(rules, len(labels), asked.parties, n_features + 1)  # before anything is computed
    fam = family(asked.family)
    y = np.asarray(labels, dtype=np.float64)
    if (problem := fam.check_response(y)) is not None:
        raise ProtocolError(f"cannot fit a {fam.name} GLM here: {problem}", code="glm_response")
    mean = np.asarray(tensors[standardization.MEAN], dtype=np.float64)
    scale = np.asarray(tensors[standardization.SCALE], dtype=np.float64)
    return local_sums(design_matrix(features, mean, scale), y, np.asarray(tensors["beta"], dtype=np.float64), fam)


def reply(sums: GlmSums, masked: np.ndarray | None = None) -> tuple[dict[str, Any], Params]:
    """The reply body and its one tensor: the sums vector, or the masked one under secure aggregation."""
    tensors = {"sums": sums.to_vector()} if masked is None else {"masked": masked}
    return GlmSumsReply(count=sums.count).model_dump(), tensors
