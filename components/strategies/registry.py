"""Strategy lookup by the name used in federation configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.strategies.base import Strategy
from components.strategies.fedavg import FedAvg

_FACTORIES: dict[str, Callable[..., Strategy]] = {
    "fedavg": FedAvg,
}


def strategy_names() -> list[str]:
    return sorted(_FACTORIES)


def build_strategy(name: str, **options: Any) -> Strategy:
    """Build the strategy called ``name`` with its config options."""
    try:
        factory = _FACTORIES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {strategy_names()}") from None
    return factory(**options)
