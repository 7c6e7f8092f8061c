"""Strategy lookup by the name used in federation configs.

Options are plain keywords, e.g. ``build_strategy("trimmed_mean", beta=0.2)``. The wrappers
``clipping``, ``dp``, ``bucketing`` and ``mixing`` take the wrapped strategy's name as ``inner`` and its options as
``inner_options``: ``build_strategy("dp", inner="fedadam", inner_options={"server_learning_rate": 0.03},
clip_norm=1.0, noise_multiplier=1.0)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.core.strategies.base import Strategy
from components.core.strategies.bucketing import Bucketing
from components.core.strategies.clipping import NormClipping
from components.core.strategies.dp import DifferentialPrivacy
from components.core.strategies.fedavg import FedAvg
from components.core.strategies.fedopt import FedAdagrad, FedAdam, FedYogi
from components.core.strategies.fedprox import FedProx
from components.core.strategies.median import CoordinateMedian
from components.core.strategies.mixing import NearestNeighbourMixing
from components.core.strategies.multikrum import MultiKrum
from components.core.strategies.trimmed_mean import TrimmedMean


def _wrapper(wrap: Callable[..., Strategy]) -> Callable[..., Strategy]:
    def build(inner: str = "fedavg", inner_options: dict[str, Any] | None = None, **options: Any) -> Strategy:
        return wrap(build_strategy(inner, **(inner_options or {})), **options)

    return build


_FACTORIES: dict[str, Callable[..., Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "median": CoordinateMedian,
    "trimmed_mean": TrimmedMean,
    "multikrum": MultiKrum,
    "clipping": _wrapper(NormClipping),
    "dp": _wrapper(DifferentialPrivacy),
    "bucketing": _wrapper(Bucketing),
    "mixing": _wrapper(NearestNeighbourMixing),
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
