"""Checks an update must pass before it is aggregated: names, shapes, dtypes, finiteness, norm bound."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from components.core.errors import UpdateRejected
from components.core.params import Layout, Params
from components.core.strategies.base import ClientUpdate


def check_layout(params: Mapping[str, np.ndarray], layout: Layout) -> None:
    """Raise UpdateRejected unless ``params`` has exactly the tensors of ``layout`` (name -> (shape, dtype)),
    all finite. Run on every update at the boundary, whatever request it claims to answer."""
    missing = sorted(set(layout) - set(params))
    extra = sorted(set(params) - set(layout))
    if missing or extra:
        raise UpdateRejected(f"tensor names differ from the model: missing {missing}, unexpected {extra}")
    for name, (shape, dtype) in layout.items():
        array = params[name]
        if not isinstance(array, np.ndarray):
            raise UpdateRejected(f"tensor {name!r} is a {type(array).__name__}, not an array")
        if array.shape != tuple(shape):
            raise UpdateRejected(f"tensor {name!r} has shape {array.shape}, expected {tuple(shape)}")
        if array.dtype != np.dtype(dtype):
            raise UpdateRejected(f"tensor {name!r} has dtype {array.dtype}, expected {np.dtype(dtype)}")
        if not np.all(np.isfinite(array)):
            raise UpdateRejected(f"tensor {name!r} has {int(np.sum(~np.isfinite(array)))} non-finite values")


def check_distance(params: Mapping[str, np.ndarray], reference: Params | None, max_norm: float) -> None:
    """Raise UpdateRejected if ``||params - reference||`` (``||params||`` without a reference) exceeds ``max_norm``.

    Run once per reply, against the global model of the request it answers (after ``check_layout``)."""
    squared = 0.0
    for name, array in params.items():
        delta = np.asarray(array, dtype=np.float64) - (0.0 if reference is None else reference[name])
        squared += float(np.sum(delta**2))
    if np.sqrt(squared) > max_norm:
        what = "update's distance from the global model" if reference is not None else "update's norm"
        raise UpdateRejected(f"{what} is {np.sqrt(squared):.4g}, over the bound of {max_norm:g}")


def check_update(
    params: Mapping[str, np.ndarray],
    layout: Layout,
    max_norm: float | None,
    reference: Params | None,
) -> None:
    """Both checks: ``check_layout``, then ``check_distance`` when a bound is set."""
    check_layout(params, layout)
    if max_norm is not None:
        check_distance(params, reference, max_norm)


def screen_updates(
    updates: Sequence[ClientUpdate],
    layout: Layout,
    max_norm: float | None = None,
    reference: Params | None = None,
) -> tuple[list[ClientUpdate], dict[str, str]]:
    """Split updates into those that pass ``check_update`` and a record of why each other party was rejected."""
    accepted: list[ClientUpdate] = []
    rejected: dict[str, str] = {}
    for update in updates:
        try:
            check_update(update.params, layout, max_norm, reference)
        except UpdateRejected as error:
            rejected[update.party] = str(error)
        else:
            accepted.append(update)
    return accepted, rejected
