"""Party liveness as a pure state machine with finite timeouts (time is passed in, never read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PartyStatus(StrEnum):
    UNKNOWN = "unknown"  # never heard from
    ONLINE = "online"  # heard from within the timeout, idle
    BUSY = "busy"  # heard from within the timeout, training
    OFFLINE = "offline"  # silent for longer than the timeout, or said goodbye


@dataclass
class Liveness:
    """Tracks when each party was last heard from; a busy party that keeps sending heartbeats stays alive."""

    timeout_s: float
    _last_seen: dict[str, float] = field(default_factory=dict)
    _busy: dict[str, bool] = field(default_factory=dict)
    _left: set[str] = field(default_factory=set)

    def observe(self, party: str, now: float, busy: bool = False) -> None:
        self._last_seen[party] = now
        self._busy[party] = busy
        self._left.discard(party)

    def leave(self, party: str) -> None:
        self._left.add(party)

    def status(self, party: str, now: float) -> PartyStatus:
        if party in self._left:
            return PartyStatus.OFFLINE
        seen = self._last_seen.get(party)
        if seen is None:
            return PartyStatus.UNKNOWN
        if now - seen > self.timeout_s:
            return PartyStatus.OFFLINE
        return PartyStatus.BUSY if self._busy.get(party) else PartyStatus.ONLINE

    def alive(self, parties: list[str], now: float) -> list[str]:
        """The parties among ``parties`` that are online or busy."""
        return [p for p in parties if self.status(p, now) in (PartyStatus.ONLINE, PartyStatus.BUSY)]
