"""``consortia serve NAME@champion``: which registered version a reference names, and serving it over HTTP."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from components.core.errors import ConfigError, ModelNotFound


@dataclass(frozen=True)
class ModelReference:
    """``NAME@ALIAS`` or ``NAME@VERSION`` (a number), as given on the command line."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelReference:
        name, at, target = text.rpartition("@")
        if not at or not name or not target:
            raise ModelNotFound(f"{text!r} is not NAME@ALIAS or NAME@VERSION (e.g. consortia-breast-cancer@champion)")
        if target.isdigit():
            return cls(name, version=int(target))
        return cls(name, alias=target)


def resolved_version(tracking_uri: str, reference: ModelReference) -> int:
    """The registered version ``reference`` names; ``ModelNotFound`` saying what exists when there is none."""
    from components.adapters.tracking import ModelRegistry

    registry = ModelRegistry(tracking_uri)
    versions = registry.versions(reference.name)
    if not versions:
        raise ModelNotFound(f"no registered model {reference.name!r} in {tracking_uri}")
    if reference.alias is not None:
        found = registry.version_by_alias(reference.name, reference.alias)
        if found is None:
            aliases = sorted({alias for version in versions for alias in version.aliases})
            raise ModelNotFound(f"{reference.name} has no alias {reference.alias!r} (aliases: {aliases or 'none'})")
        return found.version
    if reference.version not in {version.version for version in versions}:
        numbers = [version.version for version in versions]
        raise ModelNotFound(f"{reference.name} has no version {reference.version} (versions: {numbers})")
    return reference.version


def refuse_taken_port(host: str, port: int) -> None:
    """``ConfigError`` if ``host:port`` cannot be listened on now (said before seconds of loading the model)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}; choose another --port") from None


def serve_model(tracking_uri: str, name: str, version: int, port: int, host: str = "127.0.0.1") -> None:
    """Serve version ``version`` of ``name`` on ``host:port`` until SIGINT or SIGTERM (an alias moved meanwhile
    does not change what is served)."""
    from components.adapters.model_server import prediction_app, serve

    serve(prediction_app(tracking_uri, f"models:/{name}/{version}"), host, port)
