"""Plug-in models: packages that register a model factory under the entry-point group ``consortia.models``.

The contract a plug-in package implements::

    # pyproject.toml of the package (its distribution version is what the federation pins)
    [project.entry-points."consortia.models"]
    tiny-cnn = "my_package.models:tiny_cnn"

    # my_package/models.py
    def tiny_cnn(spec: ModelSpec, **options) -> torch.nn.Module: ...
    tiny_cnn.loss = my_loss   # optional: loss(outputs, targets) -> scalar tensor

The factory gets the whole ``ModelSpec`` (``spec.row_shape`` = ``input_shape``, ``spec.n_classes``,
``spec.task``) and ``spec.plugin.options`` as keyword arguments. It is called under ``torch.manual_seed(
spec.seed)``, so the same seed gives the same weights everywhere. Its module takes a batch of rows of
``spec.row_shape`` (already standardised, unless ``standardize`` is False) and returns
``[batch, n_classes]``: logits for classification, values for regression (checked on a probe batch when
the model is built). Its state dict (parameters and buffers) is what parties send.

A ``loss`` attribute on the factory replaces the task's default loss in local training; it receives the
model's outputs and the targets (class indices as int64 for classification, float32 values of shape
``[batch]`` for regression). Evaluation still reports the task's metrics (its ``loss`` is log loss or MSE).

Parties and the coordinator (which builds the model for its parameter layout) both load the plug-in: the
distribution that registers ``spec.plugin.name`` must be installed at exactly ``spec.plugin.version``,
otherwise ``ConfigError`` (permanent: installing the right version is the fix, not a retry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch
from torch import nn

from components.core.errors import ConfigError
from components.core.model_spec import ModelSpec, PluginRef

GROUP = "consortia.models"

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Plugin:
    """A loaded plug-in: its factory, optional loss, and the distribution that registered it."""

    name: str
    version: str
    distribution: str
    factory: Callable[..., nn.Module]
    loss: Loss | None


def _version(entry: metadata.EntryPoint) -> str | None:
    return entry.dist.version if entry.dist is not None else None


def _distribution(entry: metadata.EntryPoint) -> str:
    return entry.dist.name if entry.dist is not None else "?"


def installed_plugins() -> list[str]:
    """``name==version`` of every model registered here, sorted."""
    return sorted({f"{e.name}=={_version(e)}" for e in metadata.entry_points(group=GROUP)})


def load_plugin(ref: PluginRef) -> Plugin:
    """The plug-in ``ref`` names, at exactly ``ref.version``; ``ConfigError`` when missing or another version."""
    entries = [e for e in metadata.entry_points(group=GROUP) if e.name == ref.name]
    if not entries:
        raise ConfigError(
            f"plug-in model {ref.name!r} is not installed here (installed plug-ins: {installed_plugins()})"
        )
    matching = [e for e in entries if _version(e) == ref.version]
    if not matching:
        here = ", ".join(sorted({str(_version(e)) for e in entries}))
        raise ConfigError(f"plug-in model {ref.name!r} is version {here} here, the federation asks for {ref.version}")
    if len({e.value for e in matching}) > 1:
        sources = sorted(f"{_distribution(e)}: {e.value}" for e in matching)
        raise ConfigError(f"plug-in model {ref.name!r} {ref.version} is registered more than once here: {sources}")
    entry = matching[0]
    try:
        factory = entry.load()
    except Exception as error:  # an import error of the plug-in's own package
        raise ConfigError(
            f"plug-in model {ref.name!r} ({_distribution(entry)} {ref.version}) cannot be imported: {error!r}"
        ) from error
    if not callable(factory):
        raise ConfigError(f"plug-in model {ref.name!r} points at {entry.value}, which is not callable")
    loss = getattr(factory, "loss", None)
    if loss is not None and not callable(loss):
        raise ConfigError(f"plug-in model {ref.name!r}: its loss attribute is not callable")
    return Plugin(ref.name, ref.version, _distribution(entry), factory, loss)


def plugin_loss(spec: ModelSpec) -> Loss | None:
    """The plug-in's own loss, if ``spec`` is a plug-in model that has one."""
    return load_plugin(spec.plugin).loss if spec.kind == "plugin" and spec.plugin is not None else None


def build_plugin_body(spec: ModelSpec) -> nn.Module:
    """Call the plug-in's factory and check its module maps ``[batch, *row_shape]`` to ``[batch, n_classes]``."""
    if spec.plugin is None:
        raise ConfigError("kind 'plugin' needs plugin: {name, version, options}")
    plugin = load_plugin(spec.plugin)
    options: dict[str, Any] = dict(spec.plugin.options)
    try:
        module = plugin.factory(spec, **options)
    except Exception as error:
        raise ConfigError(
            f"plug-in model {plugin.name!r} {plugin.version} failed to build with options {options}: {error!r}"
        ) from error
    if not isinstance(module, nn.Module):
        raise ConfigError(f"plug-in model {plugin.name!r} returned a {type(module).__name__}, not a torch.nn.Module")
    probe = torch.zeros((2, *spec.row_shape))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(probe)
    except Exception as error:
        raise ConfigError(
            f"plug-in model {plugin.name!r} fails on a batch of shape {list(probe.shape)}: {error!r}"
        ) from error
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.n_classes):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"plug-in model {plugin.name!r} returns {shape} for a batch of shape {list(probe.shape)}, "
            f"expected [2, {spec.n_classes}] ([batch, n_classes])"
        )
    return module
