"""What an exchange's silence and refusals mean for a step: continue without some parties, or fail for a retry."""

from __future__ import annotations

import logging

from components.core.errors import PartyUnavailable
from components.run.coordinator import Exchange

log = logging.getLogger(__name__)


def problems(exchange: Exchange, silence: str = "no reply before deadline") -> dict[str, str]:
    """Party -> why it has no usable reply (the error it sent or was refused with, or its silence)."""
    return {**exchange.errors, **dict.fromkeys(exchange.missing, silence)}


def require_answers(exchange: Exchange, step: str, min_parties: int) -> None:
    """PartyUnavailable (retried) when fewer than ``min_parties`` answered; otherwise log who is left out."""
    missing = problems(exchange)
    if not missing:
        return
    if len(exchange.replies) < min_parties:
        raise PartyUnavailable(f"{step}: parties did not answer: {missing}")
    log.warning("%s: continuing without %s", step, missing)
