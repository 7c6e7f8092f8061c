"""Disclosure rules a party checks before any sum or statistic leaves it; a refusal names the rule.

Defaults, and where they come from:

- ``min_rows = 10``: vantage6's GLM and NVFlare's federated statistics ask for at least 10 rows (or counts);
  DataSHIELD's table filter is 3, which we consider too low for sums of a few columns.
- ``min_parties = 3``: vantage6's minimum number of organisations. With two, each party can subtract its own
  sums from the total and learn the other's.
- ``max_parameter_fraction = 0.33``: DataSHIELD's ``nfilter.glm``: a GLM may not have more parameters than a
  third of a party's rows (vantage6 asks for 10%). With as many parameters as rows, ``X'X`` and ``X'y`` give the
  rows back.

- ``release_extremes = True``: federated statistics include each feature's min and max, which are row values;
  an owner who may not release them sets it false (NVFlare would add noise; we leave them out).

A data owner sets them in ``party.yaml`` (``disclosure:``) and may only make them stricter by what they choose;
the coordinator cannot relax them: the party checks what it is asked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from components.core.errors import DisclosureRefused


class DisclosureRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: int = Field(default=10, ge=1, description="rows behind any figure that leaves the party")
    min_parties: int = Field(default=3, ge=1, description="parties whose sums are added (the request says)")
    max_parameter_fraction: float = Field(
        default=0.33, gt=0, le=1, description="model parameters per row of this party, at most"
    )
    release_extremes: bool = Field(
        default=True, description="federated statistics: send each feature's min and max (they are row values)"
    )


def check_disclosure(rules: DisclosureRules, rows: int, parties: int, n_parameters: int) -> None:
    """Raise ``DisclosureRefused`` naming the first rule a GLM sums request breaks."""
    if rows < rules.min_rows:
        raise DisclosureRefused("min_rows", f"this party has {rows} rows, the minimum is {rules.min_rows}")
    if parties < rules.min_parties:
        raise DisclosureRefused(
            "min_parties", f"the request adds the sums of {parties} parties, the minimum is {rules.min_parties}"
        )
    if n_parameters > rules.max_parameter_fraction * rows:
        raise DisclosureRefused(
            "max_parameter_fraction",
            f"{n_parameters} parameters on {rows} rows exceeds {rules.max_parameter_fraction} parameters per row",
        )
