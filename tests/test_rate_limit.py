"""Per-party load limits at the coordinator: unasked messages over a party's rate are dropped and counted without
reaching the store, and a party that keeps flooding is disconnected and marked. Over the in-memory transport."""

from __future__ import annotations

import time
from collections import Counter

from components.adapters.transport import new_keypair
from components.core.protocol import Envelope, Kind, encode
from components.core.protocol.bodies import Heartbeat, Hello
from components.run.coordinator import Coordinator
from components.twins.transport import MemoryNetwork

FLOOD = 50_000


def _wait(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_heartbeat_flood_is_dropped_counted_and_cut_off_while_an_honest_party_is_heard():
    network = MemoryNetwork()
    server, honest, flooder = new_keypair(), new_keypair(), new_keypair()
    events: Counter[tuple[str, str]] = Counter()
    coordinator = Coordinator(
        bind="mem://coordinator",
        keys=server,
        party_keys={honest.public: "alice", flooder.public: "mallory"},
        router=network.router,
        on_event=lambda party, event, _: events.update([(party, event)]),  # what would reach the store
        message_burst=100,
        message_rate_per_s=20.0,
        flood_disconnect_after=2000,
    )
    alice = network.dealer("mem://coordinator", server.public, honest)
    mallory = network.dealer("mem://coordinator", server.public, flooder)
    hello = Hello(manifest={}).model_dump()
    alice.send(encode(Envelope(kind=Kind.HELLO, sender="alice", body=hello)))
    beat = encode(Envelope(kind=Kind.HEARTBEAT, sender="mallory", body=Heartbeat().model_dump()))
    try:
        started = time.monotonic()
        for _ in range(FLOOD):  # unpaced: as fast as the twin takes them
            mallory.send(beat)
        _wait(lambda: "mallory" in coordinator.disconnected)
        seconds = time.monotonic() - started
        alice.send(encode(Envelope(kind=Kind.HEARTBEAT, sender="alice", body=Heartbeat().model_dump())))
        _wait(lambda: events[("alice", "heartbeat")] == 1)
    finally:
        coordinator.close()
    assert coordinator.dropped["mallory"] == 2000  # then cut off: the rest never reached the coordinator
    assert events[("mallory", "heartbeat")] <= 100 + 20 * seconds + 1  # the burst and the rate, no more
    assert events[("mallory", "flood")] == 1
    assert coordinator.rejected_codes[("mallory", "flood")] == 1  # one refusal: it costs reputation
    assert coordinator.rejected["mallory"] == 1
    assert not coordinator.is_connected("mallory")
    assert coordinator.is_connected("alice") and coordinator.dropped["alice"] == 0
    assert "2000 unasked messages over its rate dropped" in coordinator.accounting("mallory")
