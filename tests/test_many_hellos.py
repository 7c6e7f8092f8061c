"""1,000 parties say hello within one second, over real CURVE sockets on 127.0.0.1: every one is admitted."""

from __future__ import annotations

import time

import pytest

from components.adapters.transport import DealerPool, new_keypair
from components.core.protocol import Envelope, Kind, decode, encode
from components.core.protocol.bodies import Hello, Resources
from components.run.coordinator import Coordinator

pytestmark = pytest.mark.integration
PARTIES = 1000


def test_a_thousand_hellos_within_a_second_are_all_admitted_and_welcomed():
    coordinator_keys = new_keypair()
    keys = {f"party-{i:04d}": new_keypair() for i in range(PARTIES)}
    coordinator = Coordinator(
        bind="tcp://127.0.0.1:0", keys=coordinator_keys, party_keys={k.public: name for name, k in keys.items()}
    )
    pool = DealerPool(linger_ms=0)
    try:
        hellos = {
            name: encode(
                Envelope(
                    kind=Kind.HELLO,
                    sender=name,
                    body=Hello(manifest={"party": name, "rows": 10}, resources=Resources(cores=1)).model_dump(),
                )
            )
            for name in keys
        }
        # a thousand connections opened at once (each CURVE handshake and ZAP check still under way), then every
        # party says hello, no pacing, no waiting for anyone's welcome
        dealers = {name: pool.open(coordinator.endpoint, coordinator_keys.public, k) for name, k in keys.items()}
        started = time.monotonic()
        for name, dealer in dealers.items():
            dealer.send(hellos[name])
        sent_within = time.monotonic() - started
        welcomed: set[str] = set()
        by_dealer = {id(dealer): name for name, dealer in dealers.items()}
        deadline = time.monotonic() + 60
        while len(welcomed) < PARTIES and time.monotonic() < deadline:
            for dealer in pool.ready(0.2):
                while (frames := dealer.receive(0)) is not None:
                    envelope, _ = decode(frames)
                    if envelope.kind == Kind.WELCOME:
                        welcomed.add(by_dealer[id(dealer)])
        assert sent_within < 1.0, f"the hellos took {sent_within:.2f} s to send: not a burst"
        assert len(welcomed) == PARTIES, f"{PARTIES - len(welcomed)} parties never welcomed"
        assert all(coordinator.is_connected(name) for name in keys)
        assert all(coordinator.parties[name].hello is not None for name in keys)
        assert len({coordinator.parties[name].routing_id for name in keys}) == PARTIES  # one connection each
        # nothing was refused, throttled or dropped on the way: each party's budgets held for its one hello
        assert sum(coordinator.rejected.values()) == 0
        assert sum(coordinator.dropped.values()) == sum(coordinator.throttled.values()) == 0
        assert sum(coordinator.dropped_replies.values()) == 0
        assert coordinator._endpoint.dropped_total == 0
        assert coordinator._endpoint.received == PARTIES
        print(f"{PARTIES} hellos sent in {sent_within:.2f} s, all welcomed")
    finally:
        pool.close()
        coordinator.close()
