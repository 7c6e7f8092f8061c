"""Exact federated generalised linear models: per-party sums, the coordinator's Newton step, the summary.

Each party returns additive sums of its own rows at the coefficients it is sent (``sums``); the
coordinator adds them and takes one Newton-Raphson (IRLS) step (``newton``), so the fit equals the
fit on the pooled rows. ``disclosure`` is what a party checks before any sum leaves it; ``summary``
is what a statistician reads.
"""

from components.core.glm.disclosure import DisclosureRules, check_disclosure
from components.core.glm.family import FAMILIES, Family, family
from components.core.glm.newton import NewtonFit, Step, fit
from components.core.glm.summary import GlmSummary, summarise
from components.core.glm.sums import GlmSums, local_sums

__all__ = [
    "FAMILIES",
    "DisclosureRules",
    "Family",
    "GlmSummary",
    "GlmSums",
    "NewtonFit",
    "Step",
    "check_disclosure",
    "family",
    "fit",
    "local_sums",
    "summarise",
]
