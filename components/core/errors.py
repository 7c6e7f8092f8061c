"""One error tree for Consortia; it decides what is retried.

ConsortiaError
├── PermanentError          never retried: fix the input or the config
│   ├── ConfigError         a federation or party config is invalid
│   ├── ContractError       data does not meet its contract (or cannot be read)
│   ├── ProtocolError       a message is malformed, hostile or from another protocol version
│   ├── UpdateRejected      a model update fails the boundary checks (shape, finiteness, norm)
│   └── BudgetExceeded      a privacy budget would be exceeded
└── TransientError          retried by the flow: the world may be different next time
    ├── PartyUnavailable    a party did not answer in time or is offline
    └── QuorumNotReached    too few parties answered a round
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


def is_retryable(error: BaseException) -> bool:
    """True for errors a Prefect retry may cure."""
    return isinstance(error, TransientError)
