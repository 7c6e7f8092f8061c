"""Per-round contribution valuation from the updates the coordinator already holds (no retraining).

The utility of a coalition is ``evaluate`` (e.g. held-out accuracy) of the FedAvg of its updates
(see ``round_utility``). Methods, by config name:

- ``exact``: exact Shapley, all 2^n coalitions (refused above ``max_parties``, default 8).
- ``gtg``: GTG-Shapley (Liu et al. 2022), guided truncated permutations with a convergence stop.
- ``tmc``: TMC-Shapley (Ghorbani and Zou 2019), random truncated permutations.
- ``loo``: leave-one-out, n + 1 evaluations.
- ``cgsv``: cosine of each update with the aggregate (CGSV-style), no validation data, no evaluation.

Parties whose updates are identical are symmetric players and always get equal values.

Under secure aggregation the coordinator sees only the sum of all updates, so no method here
can run there: the coalition methods need the model of every coalition, i.e. sums over subsets,
which secure aggregation hides by design (masks cancel only in the full sum of the round's
survivors); ``cgsv`` needs each party's own update for its cosine. ``methods_under_secure_aggregation``
is therefore empty. (A party could compute its own cosine against the published aggregate and report
it, but that is a self-declared, unverifiable number, not a coordinator-side valuation.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from components.core.errors import ConfigError
from components.core.params import Params
from components.core.strategies.base import ClientUpdate
from components.core.valuation.exact import ExactOptions, exact_shapley
from components.core.valuation.game import CoalitionUtility, Estimate, share_within_groups
from components.core.valuation.gtg import GTGOptions, gtg_shapley
from components.core.valuation.loo import LOOOptions, leave_one_out
from components.core.valuation.round_utility import Evaluate, interchangeable_parties, round_utility
from components.core.valuation.similarity import CGSVOptions, cgsv_scores
from components.core.valuation.tmc import TMCOptions, tmc_shapley

Runner = Callable[[CoalitionUtility, Sequence[ClientUpdate], Params, Any], Estimate]


def _exact(values: dict[str, float]) -> Estimate:
    return Estimate(values, dict.fromkeys(values, 0.0))


_METHODS: dict[str, tuple[type[BaseModel], Runner]] = {
    "exact": (ExactOptions, lambda utility, updates, current, options: _exact(exact_shapley(utility, options))),
    "gtg": (GTGOptions, lambda utility, updates, current, options: gtg_shapley(utility, options)),
    "tmc": (TMCOptions, lambda utility, updates, current, options: tmc_shapley(utility, options)),
    "loo": (LOOOptions, lambda utility, updates, current, options: _exact(leave_one_out(utility))),
    "cgsv": (CGSVOptions, lambda utility, updates, current, options: _exact(cgsv_scores(updates, current))),
}


class ValuationResult(BaseModel):
    """One round's values per party, their Monte Carlo standard errors (0 for exact methods), and the cost."""

    method: str
    values: dict[str, float]
    errors: dict[str, float] = {}
    evaluations: int
    seconds: float


def valuation_methods() -> list[str]:
    return sorted(_METHODS)


def methods_under_secure_aggregation() -> list[str]:
    """Methods the coordinator can run when it only sees the sum of the updates: none (see the module docstring)."""
    return []


def valuation_problems(method: Any, options: Any = None) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with a config's valuation ``method`` and ``options``, one ``(location, message)`` a mistake.

    Locations are relative to the valuation section: ``("method",)``, ``("options", "max_parties")``.
    """
    if not isinstance(method, str) or method not in _METHODS:
        return [(("method",), f"{method!r} is not a valuation method; choose one of [{', '.join(_METHODS)}]")]
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        return [(("options",), f"must be a mapping of options of {method!r}, got {options!r}")]
    model = _METHODS[method][0]
    valid = ", ".join(model.model_fields)
    unknown = f"unknown option of {method!r}; " + (
        f"valid options: {valid}" if valid else f"{method!r} takes no options"
    )
    try:
        model.model_validate(dict(options))
    except ValidationError as error:
        return [
            (("options", *e["loc"]), unknown if e["type"] == "extra_forbidden" else e["msg"]) for e in error.errors()
        ]
    return []


def valuation_options(method: str, options: Mapping[str, Any] | None = None) -> BaseModel:
    """The typed options of ``method``; unknown methods and invalid options are a ``ConfigError``."""
    if method not in _METHODS:
        raise ConfigError(f"unknown valuation method {method!r}; choose one of [{', '.join(_METHODS)}]")
    problems = valuation_problems(method, options)
    if problems:
        raise ConfigError("; ".join(f"valuation.{'.'.join(str(p) for p in loc)}: {msg}" for loc, msg in problems))
    return _METHODS[method][0].model_validate(dict(options or {}))


def value_round(
    method: str,
    updates: Sequence[ClientUpdate],
    current_params: Mapping[str, np.ndarray],
    evaluate: Evaluate,
    options: Mapping[str, Any] | None = None,
    *,
    start_utility: float | None = None,
    full_utility: float | None = None,
) -> ValuationResult:
    """Value each party's update of one round with ``method``.

    ``current_params`` is the round's starting global model. ``start_utility`` is state the caller carries
    between rounds: ``evaluate`` of that starting model if already known (the previous round's global
    metric on the same split); it saves an evaluation and is what GTG's skip of a round that gained
    nothing compares against; ``full_utility`` likewise for v(N), the utility of the FedAvg of all the
    round's updates. With ``options["workers"] > 1``, ``evaluate`` must be thread-safe.
    """
    typed = valuation_options(method, options)
    started = time.perf_counter()
    if not updates:
        return ValuationResult(method=method, values={}, evaluations=0, seconds=0.0)
    utility = round_utility(
        updates, current_params, evaluate, getattr(typed, "workers", 1), start_utility, full_utility
    )
    estimate = _METHODS[method][1](utility, updates, dict(current_params), typed)
    groups = interchangeable_parties(updates)
    return ValuationResult(
        method=method,
        values=share_within_groups(estimate.values, groups),
        errors=share_within_groups(estimate.errors, groups),
        evaluations=utility.evaluations,
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "CoalitionUtility",
    "ValuationResult",
    "methods_under_secure_aggregation",
    "round_utility",
    "valuation_methods",
    "valuation_options",
    "valuation_problems",
    "value_round",
]
