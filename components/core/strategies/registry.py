"""Strategy lookup by the name used in federation configs, and validation of a config's strategy.

Options are plain keywords, e.g. ``build_strategy("trimmed_mean", beta=0.2)``. The wrappers
``clipping``, ``dp``, ``bucketing`` and ``mixing`` take the wrapped strategy's name as ``inner`` and its options as
``inner_options``: ``build_strategy("dp", inner="fedadam", inner_options={"server_learning_rate": 0.03},
clip_norm=1.0, noise_multiplier=1.0)``.

A strategy's options are its class's constructor keywords (read with ``inspect``, typed from its annotations),
so the registry never keeps a second list of them. ``check_strategy`` validates a config's name and options,
wrappers' inner strategies recursively, and builds the strategy once (building is cheap and pure), so a bad
value is reported when the config is loaded rather than when the run starts.

Strategy modules are imported on first use: ``dp`` pulls in opacus (and torch), which a config naming
another strategy, or the command line starting up, should not wait for.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from components.core.errors import ConsortiaError
from components.core.strategies.base import Strategy

WRAPPER_OPTIONS = ("inner", "inner_options")
DEFAULT_INNER = "fedavg"


@dataclass(frozen=True)
class _Factory:
    """Where a strategy class lives; ``wraps``: it takes an inner strategy as its first argument."""

    module: str
    class_name: str
    wraps: bool = False

    def load(self) -> type:
        return getattr(importlib.import_module(f"components.core.strategies.{self.module}"), self.class_name)


_FACTORIES: dict[str, _Factory] = {
    "fedavg": _Factory("fedavg", "FedAvg"),
    "fedprox": _Factory("fedprox", "FedProx"),
    "fedadam": _Factory("fedopt", "FedAdam"),
    "fedyogi": _Factory("fedopt", "FedYogi"),
    "fedadagrad": _Factory("fedopt", "FedAdagrad"),
    "median": _Factory("median", "CoordinateMedian"),
    "trimmed_mean": _Factory("trimmed_mean", "TrimmedMean"),
    "multikrum": _Factory("multikrum", "MultiKrum"),
    "clipping": _Factory("clipping", "NormClipping", wraps=True),
    "dp": _Factory("dp", "DifferentialPrivacy", wraps=True),
    "bucketing": _Factory("bucketing", "Bucketing", wraps=True),
    "mixing": _Factory("mixing", "NearestNeighbourMixing", wraps=True),
}


def strategy_names() -> list[str]:
    return sorted(_FACTORIES)


def _factory(name: str) -> _Factory:
    try:
        return _FACTORIES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown strategy {name!r}; choose one of {strategy_names()}") from None


def build_strategy(name: str, **options: Any) -> Strategy:
    """Build the strategy called ``name`` with its config options."""
    factory = _factory(name)
    if not factory.wraps:
        return factory.load()(**options)
    inner = options.pop("inner", DEFAULT_INNER)
    inner_options = options.pop("inner_options", None) or {}
    return factory.load()(build_strategy(inner, **inner_options), **options)


# ---- validation ----


class Problem(NamedTuple):
    """One mistake in a strategy config: where (relative to the strategy section) and what."""

    loc: tuple[str | int, ...]
    message: str


class CheckedStrategy(NamedTuple):
    """A config's strategy after ``check_strategy``: normalised name and typed options, or the problems."""

    name: str
    options: dict[str, Any]
    problems: list[Problem]


@dataclass(frozen=True)
class _Signature:
    model: type[BaseModel]  # the constructor's keywords (``inner`` excluded), typed, with their defaults
    accepts_any: bool  # the constructor takes **kwargs: no option is unknown


@cache
def _signature(name: str) -> _Signature:
    factory = _FACTORIES[name]
    cls = factory.load()
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve at run time: check presence only
        hints = {}
    fields: dict[str, Any] = {}
    accepts_any = False
    parameters = list(inspect.signature(cls).parameters.values())
    if factory.wraps:
        parameters = parameters[1:]  # the inner strategy, which the config gives as inner / inner_options
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_any = True
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (hints.get(parameter.name, Any), default)
    config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)
    try:
        model = create_model(f"{factory.class_name}Options", __config__=config, **fields)
    except Exception:  # a type pydantic cannot check: still check names and required options
        model = create_model(
            f"{factory.class_name}Options", __config__=config, **{k: (Any, d) for k, (_, d) in fields.items()}
        )
    return _Signature(model, accepts_any)


def strategy_options(name: str) -> list[str]:
    """The option names a config may give strategy ``name`` (wrappers: also ``inner`` and ``inner_options``)."""
    factory = _factory(name)
    own = list(_signature(name.lower()).model.model_fields)
    return [*own, *WRAPPER_OPTIONS] if factory.wraps else own


def _not_a_strategy(name: Any) -> str:
    return f"{name!r} is not a strategy; choose one of [{', '.join(strategy_names())}]"


def _unknown_option(name: str) -> str:
    valid = strategy_options(name)
    if not valid:
        return f"unknown option of {name!r}; {name!r} takes no options"
    return f"unknown option of {name!r}; valid options: {', '.join(valid)}"


def _blame(message: str, given: Mapping[str, Any]) -> tuple[str, ...]:
    """The one given option a constructor's message names, if exactly one: the field to report it at."""
    named = [key for key in given if re.search(rf"\b{re.escape(key)}\b", message)]
    return (named[0],) if len(named) == 1 else ()


def _check(
    name: Any, options: Any, name_loc: tuple[str | int, ...], options_loc: tuple[str | int, ...]
) -> tuple[Strategy | None, str, dict[str, Any], list[Problem]]:
    """Validate one level (and, for wrappers, everything inside); build it when nothing is wrong."""
    if not isinstance(name, str) or name.lower() not in _FACTORIES:
        return (
            None,
            str(name),
            dict(options) if isinstance(options, Mapping) else {},
            [Problem(name_loc, _not_a_strategy(name))],
        )
    name = name.lower()
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        return None, name, {}, [Problem(options_loc, f"must be a mapping of options of {name!r}, got {options!r}")]
    factory, signature = _FACTORIES[name], _signature(name)
    problems: list[Problem] = []
    own = {k: v for k, v in options.items() if not (factory.wraps and k in WRAPPER_OPTIONS)}
    if not signature.accepts_any:
        for key in own:
            if key not in signature.model.model_fields:
                problems.append(Problem((*options_loc, key), _unknown_option(name)))
    typed: dict[str, Any] = {}
    try:
        validated = signature.model.model_validate(own)
        typed = {k: getattr(validated, k) if k in signature.model.model_fields else v for k, v in own.items()}
    except ValidationError as error:
        problems += [
            Problem((*options_loc, *e["loc"]), f"required option of {name!r}" if e["type"] == "missing" else e["msg"])
            for e in error.errors()
        ]
    checked: dict[str, Any] = dict(typed or own)
    inner: Strategy | None = None
    if factory.wraps:
        inner_name = options.get("inner", DEFAULT_INNER)
        inner_options = options.get("inner_options") or {}
        inner, inner_name, inner_checked, inner_problems = _check(
            inner_name, inner_options, (*options_loc, "inner"), (*options_loc, "inner_options")
        )
        problems += inner_problems
        if "inner" in options:
            checked["inner"] = inner_name
        if "inner_options" in options:
            checked["inner_options"] = inner_checked
    if problems or (factory.wraps and inner is None):
        return None, name, checked, problems
    try:
        built = factory.load()(*([inner] if factory.wraps else []), **typed)
    except (TypeError, ValueError, ConsortiaError) as error:
        return (
            None,
            name,
            checked,
            [Problem((*options_loc, *_blame(str(error), own)), f"invalid for {name!r}: {error}")],
        )
    return built, name, checked, []


def check_strategy(name: Any, options: Any) -> CheckedStrategy:
    """Validate a config's strategy ``name`` and ``options``, recursing into wrappers' ``inner``/``inner_options``.

    Problems are located relative to the strategy section: ``("name",)``, ``("options", "bta")``,
    ``("options", "inner_options", "server_lr")``. With no problems, ``options`` holds the values as the
    constructor's annotations type them (e.g. YAML's string ``1e-3`` for a float becomes ``0.001``).
    """
    _, checked_name, checked_options, problems = _check(name, options, ("name",), ("options",))
    return CheckedStrategy(checked_name, checked_options, problems)
