"""Monte Carlo Shapley over sampled permutations, with truncation and a convergence stop (shared by GTG and TMC)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from components.core.valuation.game import CoalitionUtility, Estimate

Order = tuple[str, ...]


def marginals_along(
    utility: CoalitionUtility, orders: Sequence[Order], v_empty: float, v_full: float, truncate_within: float
) -> np.ndarray:
    """Each player's marginal contribution along each order (rows: orders, columns: ``utility.players``).

    All orders are walked in lockstep, so the prefixes of one length form one evaluation batch. An order
    is truncated once its prefix is within ``truncate_within`` of ``v_full``: the players after it get 0.
    """
    column = {p: i for i, p in enumerate(utility.players)}
    marginals = np.zeros((len(orders), len(utility.players)))
    previous = np.full(len(orders), v_empty, dtype=np.float64)
    active = list(range(len(orders)))
    for length in range(1, len(utility.players) + 1):
        active = [k for k in active if abs(v_full - previous[k]) >= truncate_within]
        if not active:
            break
        values = utility.evaluate_many([orders[k][:length] for k in active])
        for k, value in zip(active, values, strict=True):
            marginals[k, column[orders[k][length - 1]]] = value - previous[k]
            previous[k] = value
    return marginals


def relative_change(new: np.ndarray, old: np.ndarray) -> float:
    """L1 distance between two estimates relative to the new one's L1 size (0 when both are zero)."""
    difference = float(np.abs(new - old).sum())
    return difference / max(float(np.abs(new).sum()), 1e-12) if difference else 0.0


def monte_carlo_shapley(
    utility: CoalitionUtility,
    next_orders: Callable[[], list[Order]],
    v_empty: float,
    v_full: float,
    truncate_within: float,
    tolerance: float,
    resolution: float,
    min_batches: int,
    max_permutations: int,
) -> Estimate:
    """Mean marginal contribution over batches of orders from ``next_orders``, and its standard error.

    The error is the standard deviation of a player's marginals across the walked orders over the root
    of their number (treating the orders as independent draws; guided cycles are stratified, so it errs
    on the large side).

    Stops once a batch moves the running estimate by less than ``tolerance`` (relative L1 change) or by
    less than ``resolution`` per player on average (absolute, in the utility's units; 0 turns it off),
    after at least ``min_batches`` batches, or when ``max_permutations`` orders have been walked.
    """
    total = np.zeros(len(utility.players))
    squares = np.zeros(len(utility.players))
    walked, batches = 0, 0
    estimate = total
    while walked < max_permutations:
        orders = next_orders()[: max_permutations - walked]
        marginals = marginals_along(utility, orders, v_empty, v_full, truncate_within)
        total = total + marginals.sum(axis=0)
        squares = squares + (marginals**2).sum(axis=0)
        walked += len(orders)
        batches += 1
        previous, estimate = estimate, total / walked
        if batches >= max(min_batches, 2) and (
            relative_change(estimate, previous) < tolerance or float(np.abs(estimate - previous).mean()) < resolution
        ):
            break
    variance = np.maximum(squares / walked - estimate**2, 0.0) * walked / max(walked - 1, 1)
    error = np.sqrt(variance / walked)
    return Estimate(
        dict(zip(utility.players, estimate.tolist(), strict=True)),
        dict(zip(utility.players, error.tolist(), strict=True)),
    )
