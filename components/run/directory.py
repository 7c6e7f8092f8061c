"""The party directory: who is admitted (the config's keys but those that left), who is online, who has left.

A party that leaves (``party-agent leave``) is refused from then on: by this run at once, and by every later
run and coordinator through the store's departures, until the MLOps engineer re-admits it (``consortia readmit``).

It owns the coordinator's endpoint for the run. Party events arrive on the transport's I/O thread;
the directory updates its memory at once and hands the store writes to one writer thread, so a
slow or locked store never stalls the I/O thread (heartbeats of one party coalesce to the latest, and reach
the writer once every ``HEARTBEAT_RECORD_EVERY_S`` at most: liveness, in memory, sees every one).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from typing import Any

from components.core.config import FederationConfig
from components.core.errors import ConfigError, PartyUnavailable
from components.core.ports import KeyPair, RouterFactory
from components.core.protocol.bodies import PrivacyBudget
from components.run.coordinator import Coordinator
from components.run.recorder import RunRecorder

log = logging.getLogger(__name__)
_STOP = ("", "stop", {})
JOIN_NOTICE_S = 10.0  # while waiting for the listed parties, say who is awaited this often
NAMED = 20  # parties named one by one in a log line; the rest are counted
HEARTBEAT_RECORD_EVERY_S = 10.0  # a party's heartbeats reach the store this often at most: a thousand parties
# beating every second would otherwise ask for a thousand store writes a second, and the writer's queue would grow


class PartyDirectory:
    """Admitted parties, their connections and liveness, and the parties that left during the run."""

    def __init__(self, config: FederationConfig, keys: KeyPair, router: RouterFactory, recorder: RunRecorder) -> None:
        self.config = config
        self.recorder = recorder
        departed = recorder.store.departed([p.public_key for p in config.parties])
        admitted = [p for p in config.parties if p.public_key not in departed]
        for party in config.parties:
            if party.public_key in departed:
                log.warning(
                    "%s left the federation: its key is refused until re-admitted (`consortia readmit %s`)",
                    party.name,
                    party.name,
                )
        if len(admitted) < config.min_parties:
            raise ConfigError(
                f"{len(admitted)} parties admitted, min_parties is {config.min_parties}: "
                + ", ".join(sorted(p.name for p in config.parties if p.public_key in departed))
                + " left the federation (`consortia readmit NAME` admits a party again)"
            )
        self.names = [p.name for p in admitted]
        self._key_of = {p.name: p.public_key for p in admitted}
        for party in admitted:
            recorder.admit(party.name, party.public_key)
        self._beat_recorded: dict[str, float] = {}  # party -> when its last heartbeat went to the writer
        self._events: queue.SimpleQueue[tuple[str, str, dict[str, Any]]] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_events, name="party-status-writer", daemon=True)
        self._writer.start()
        self.coordinator = Coordinator(
            bind=config.coordinator.bind,
            keys=keys,
            party_keys={key: name for name, key in self._key_of.items()},
            max_message_bytes=config.max_message_mb << 20,
            liveness_timeout_s=config.heartbeat_timeout_s,
            on_event=self._on_party_event,
            router=router,
            message_burst=config.party_rate_limit.burst,
            message_rate_per_s=config.party_rate_limit.messages_per_s,
            flood_disconnect_after=config.party_rate_limit.disconnect_after,
            max_inflight_bytes=config.coordinator.max_inflight_mb << 20,
        )

    # ---- who is there ----
    def await_parties(self, wait_for_all: bool = False) -> list[str]:
        """Connected parties: every listed party (at the start, up to the join timeout) or a quorum (later)."""
        if wait_for_all:
            ready = self._await_everyone()
        else:
            ready = self.coordinator.wait_for_parties(
                self.names, self.config.min_parties, self.config.join_timeout_s, wait_for_all
            )
        if not ready:
            raise PartyUnavailable(
                f"fewer than {self.config.min_parties} parties connected within {self.config.join_timeout_s:.0f}s "
                f"(listening on {self.coordinator.endpoint})"
            )
        return ready

    def _await_everyone(self) -> list[str]:
        """Wait up to the join timeout for every listed party, saying who is awaited; then who is left out."""
        timeout = self.config.join_timeout_s
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.coordinator.wait_for_parties(self.names, len(self.names), min(remaining, JOIN_NOTICE_S), True)
            missing = [n for n in self.names if not self.coordinator.is_connected(n)]
            if not missing:
                return list(self.names)
            if (left := deadline - time.monotonic()) >= 1:
                log.info(
                    "waiting for %s (%d of %d parties connected), up to %.0f s more (join_timeout_s)",
                    _some(missing),
                    len(self.names) - len(missing),
                    len(self.names),
                    left,
                )
        ready = [n for n in self.names if self.coordinator.is_connected(n)]
        if len(ready) >= self.config.min_parties:
            log.warning(
                "starting with %s; left out: %s (not connected within join_timeout_s=%.0f s)",
                _some(ready),
                _some([n for n in self.names if n not in ready]),
                timeout,
            )
            return ready
        return []

    def leave_out(self, parties: list[str]) -> None:
        """No request of this run goes to ``parties`` (they refused its plan)."""
        self.names = [name for name in self.names if name not in parties]

    def privacy_budget(self, parties: list[str]) -> tuple[float | None, float]:
        """The tightest epsilon budget and delta among ``parties`` (None: nobody declared a budget)."""
        budgets: list[PrivacyBudget] = [
            info.hello.privacy_budget
            for p in parties
            if (info := self.coordinator.parties.get(p)) and info.hello and info.hello.privacy_budget
        ]
        if not budgets:
            return None, self.config.privacy_delta
        return min(b.epsilon for b in budgets), min(b.delta for b in budgets)

    # ---- events (I/O thread) ----
    def _on_party_event(self, party: str, event: str, detail: dict[str, Any]) -> None:
        if event == "heartbeat":  # liveness saw it; the store hears of a party's heartbeats every few seconds
            now = time.monotonic()
            if now - self._beat_recorded.get(party, -math.inf) < HEARTBEAT_RECORD_EVERY_S:
                return
            self._beat_recorded[party] = now
        if event == "leave":  # forgotten at once in what is written next; its store rows go on the writer thread
            self.names = [p for p in self.names if p != party]
            self.recorder.left.add(party)
        if event in ("hello", "register", "heartbeat", "bye", "leave", "flood"):
            self._events.put((party, event, detail))

    def _write_events(self) -> None:
        while True:
            batch = [self._events.get()]
            while True:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            latest_beat = {party: i for i, (party, event, _) in enumerate(batch) if event == "heartbeat"}
            for index, (party, event, detail) in enumerate(batch):
                if (party, event, detail) == _STOP:
                    return
                if event == "heartbeat" and latest_beat[party] != index:
                    continue  # a newer heartbeat of this party follows in the batch
                try:
                    self._write(party, event, detail)
                except Exception:  # a store outage must not end the writer: statuses catch up on the next event
                    log.exception("could not record %s of %s", event, party)

    def _write(self, party: str, event: str, detail: dict[str, Any]) -> None:
        if event in ("hello", "register"):
            self.recorder.party_seen(party, self._key_of[party], detail)
        elif event == "heartbeat":
            self.recorder.party_status(party, "online", detail.get("resources"))
        elif event == "bye":
            self.recorder.party_status(party, "offline")
        elif event == "flood":
            self.recorder.party_status(party, "disconnected")
        elif event == "leave":
            self.recorder.forget(party, self._key_of[party])

    def close(self) -> None:
        """Release the endpoint, write the pending events, then mark every party offline for this coordinator."""
        self.coordinator.close()
        self._events.put(_STOP)
        self._writer.join(timeout=10)
        for party in self.names:
            try:
                self.recorder.party_status(party, "offline")
            except Exception:
                log.exception("could not mark %s offline", party)


def _some(names: list[str]) -> str:
    """``names`` for a log line: the first ``NAMED`` of them, then how many more (a thousand names help nobody)."""
    shown = ", ".join(names[:NAMED])
    return shown if len(names) <= NAMED else f"{shown} and {len(names) - NAMED} more"
