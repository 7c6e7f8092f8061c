"""One error tree for Consortia; it decides what is retried.

ConsortiaError
├── PermanentError          never retried: fix the input or the config
│   ├── ConfigError         a federation or party config is invalid
│   ├── ContractError       data does not meet its contract (or cannot be read)
│   ├── ProtocolError       a message is malformed, hostile or from another protocol version
│   ├── UpdateRejected      a model update fails the boundary checks (shape, finiteness, norm)
│   ├── BudgetExceeded      a privacy budget would be exceeded
│   └── EdgeFailure         a store, tracker, versioning or transport call failed for good (bad URI, schema, ...)
└── TransientError          retried by the flow: the world may be different next time
    ├── PartyUnavailable    a party did not answer in time or is offline
    ├── QuorumNotReached    too few parties answered a round
    └── EdgeUnavailable     a store, tracker, versioning or transport call failed in a way a retry may cure

Each adapter (components/adapters) maps its library's errors into EdgeFailure or EdgeUnavailable,
naming the edge, so Prefect's retry condition decides from the error tree alone.
"""

from __future__ import annotations


class ConsortiaError(Exception):
    """Base of every error Consortia raises on purpose."""


class PermanentError(ConsortiaError):
    """An error that retrying cannot fix."""


class TransientError(ConsortiaError):
    """An error that may go away on retry."""


class ConfigError(PermanentError):
    """A config file is missing, unreadable or invalid."""


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
