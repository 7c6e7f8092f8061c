"""One error tree for Consortia; it decides what is retried.

ConsortiaError
├── PermanentError          never retried: fix the input or the config
│   ├── ConfigError         a federation or party config is invalid
│   ├── ModelNotFound       a model reference (NAME@ALIAS, NAME@VERSION) names no registered version
│   ├── ContractError       data does not meet its contract (or cannot be read)
│   ├── ProtocolError       a message is malformed, hostile or from another protocol version
│   ├── UpdateRejected      a model update fails the boundary checks (shape, finiteness, norm)
│   ├── BudgetExceeded      a privacy budget would be exceeded
│   ├── RunStateError       the run cannot take this step: it completed, or another process coordinates it
│   ├── DisclosureRefused   a party refuses a request that breaks one of its disclosure rules
│   ├── PolicyRefusal       a party's policy refuses the run (or this request of it), or too many parties did
│   ├── NotReproducible     a recorded run cannot be rerun as it was: record missing, data or contract changed
│   └── EdgeFailure         a store, tracker, versioning or transport call failed for good (bad URI, schema, ...)
└── TransientError          retried by the flow: the world may be different next time
    ├── PartyUnavailable    a party did not answer in time or is offline
    ├── QuorumNotReached    too few parties answered a round
    └── EdgeUnavailable     a store, tracker, versioning or transport call failed in a way a retry may cure

Each adapter (components/adapters) maps its library's errors into EdgeFailure or EdgeUnavailable,
naming the edge, so Prefect's retry condition decides from the error tree alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

_Class = TypeVar("_Class", bound=type)
ErrorMapper = Callable[[Exception], "ConsortiaError | None"]

PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)  # retry cannot help


class ConsortiaError(Exception):
    """Base of every error Consortia raises on purpose."""


class PermanentError(ConsortiaError):
    """An error that retrying cannot fix."""


class TransientError(ConsortiaError):
    """An error that may go away on retry."""


class ConfigError(PermanentError):
    """A config file is missing, unreadable or invalid."""


class ModelNotFound(PermanentError):
    """A model reference names no registered version: no such model, alias or version."""


class ContractError(PermanentError):
    """A dataset fails its contract, or cannot be read as the contract needs."""


class ProtocolError(PermanentError):
    """A message that cannot be accepted: bad framing, version, kind, ids or tensors."""

    def __init__(self, message: str, *, code: str = "protocol") -> None:
        super().__init__(message)
        self.code = code


class UpdateRejected(ProtocolError):
    """A model update that must not be aggregated."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="update_rejected")


class BudgetExceeded(PermanentError):
    """Running the next round would spend more privacy budget than allowed."""


class RunStateError(PermanentError):
    """A run that completed (its record is final) or that another live process coordinates."""


class DisclosureRefused(PermanentError):
    """A party refuses to release sums or statistics that would break one of its disclosure rules (named)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"disclosure rule {rule}: {message}")
        self.rule = rule


class PolicyRefusal(PermanentError):
    """A data owner's policy (or the owner) refused a run plan or a request outside the accepted plan."""


class NotReproducible(PermanentError):
    """A recorded run cannot be rerun as it was: its record is missing, or a party's data or contract changed."""


class PartyUnavailable(TransientError):
    """A party is offline or did not answer before the deadline."""


class QuorumNotReached(TransientError):
    """Fewer parties than ``min_parties`` answered a round."""


class EdgeFailure(PermanentError):
    """An adapter's library failed in a way retrying cannot fix (bad URI, missing resource, schema)."""

    def __init__(self, edge: str, message: str) -> None:
        super().__init__(f"{edge}: {message}")
        self.edge = edge


class EdgeUnavailable(TransientError):
    """An adapter's library failed in a way a retry may cure (database locked, server unreachable)."""

    def __init__(self, edge: str, message: str) -> None:
        super().__init__(f"{edge}: {message}")
        self.edge = edge


def is_retryable(error: BaseException) -> bool:
    """True for errors a Prefect retry may cure."""
    return isinstance(error, TransientError)


def first_line(error: BaseException) -> str:
    """An error's first line (no SQL, parameters or tracebacks), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def raising_consortia_errors(mapper: ErrorMapper) -> Callable[[_Class], _Class]:
    """Class decorator of an adapter: ``__init__`` and every public method raise only Consortia's errors,
    ``mapper`` turning its library's exceptions into EdgeUnavailable or EdgeFailure (None: not the edge's)."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def translated(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except ConsortiaError:
                raise
            except Exception as error:
                mapped = mapper(error)
                if mapped is None:
                    raise
                raise mapped from error

        return translated

    def decorate(cls: _Class) -> _Class:
        for name, member in list(vars(cls).items()):
            if inspect.isfunction(member) and (name == "__init__" or not name.startswith("_")):
                setattr(cls, name, wrap(member))
        return cls

    return decorate
