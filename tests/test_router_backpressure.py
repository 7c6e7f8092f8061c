"""The coordinator's ROUTER under a peer that floods and never reads: its I/O thread keeps serving everyone else.

Only the transport (no coordinator, no Prefect): every incoming message is answered with a 64 KiB reply from
the I/O thread, so the flooding peer's pipe fills at once; the replies it cannot take are dropped and counted."""

from __future__ import annotations

import threading
import time

import pytest

from components.adapters.transport import DealerEndpoint, RouterEndpoint, new_keypair
from components.core.errors import EdgeFailure, EdgeUnavailable
from components.core.ports import Peer

pytestmark = pytest.mark.integration

FLOOD = 30_000
REPLY = b"r" * (64 << 10)  # zero-copy frame (>= pyzmq's copy threshold): thousands fill any pipe and TCP buffer


class Router:
    """A RouterEndpoint whose on_message answers every message (on the I/O thread) and counts what it saw."""

    def __init__(self, **options) -> None:
        self.server, self.mallory, self.honest = new_keypair(), new_keypair(), new_keypair()
        self.allowed = {self.mallory.public, self.honest.public}
        self.received: dict[str, int] = {self.mallory.public: 0, self.honest.public: 0}
        self.routing_ids: dict[str, bytes] = {}
        self.refused_sends = 0
        self.io_thread: set[int] = set()
        self.endpoint = RouterEndpoint(
            "tcp://127.0.0.1:*", self.server, lambda key: key in self.allowed, self._on_message, **options
        )

    def _on_message(self, peer: Peer, frames: list) -> None:
        self.io_thread.add(threading.get_ident())
        self.received[peer.public_key] += 1
        self.routing_ids[peer.public_key] = peer.routing_id
        if not self.endpoint.send(peer.routing_id, [frames[0].bytes, REPLY]):
            self.refused_sends += 1

    def dealer(self, keys) -> DealerEndpoint:
        return DealerEndpoint(self.endpoint.endpoint, self.server.public, keys, linger_ms=0)


def _ask(dealer: DealerEndpoint, tag: bytes, timeout_s: float) -> float:
    """Send ``tag``; seconds until its echo came back (AssertionError if it did not within ``timeout_s``)."""
    started = time.monotonic()
    dealer.send([tag])
    while (left := timeout_s - (time.monotonic() - started)) > 0:
        frames = dealer.receive(left)
        if frames is not None and frames[0].bytes == tag:
            return time.monotonic() - started
    raise AssertionError(f"no reply to {tag!r} within {timeout_s}s")


def test_a_peer_that_floods_without_reading_does_not_stall_the_io_thread():
    router = Router()
    mallory = router.dealer(router.mallory)
    honest = router.dealer(router.honest)
    try:
        _ask(honest, b"warm-up", 5)  # both CURVE handshakes done before the clock starts
        mallory.send([b"hi"])

        def flood() -> None:
            for index in range(FLOOD):
                mallory.send([index.to_bytes(4, "big")])  # blocks only when its own pipe is full: never reads

        flooder = threading.Thread(target=flood)
        flooder.start()
        latencies = []
        while flooder.is_alive() or router.received[router.mallory.public] < FLOOD + 1:
            latencies.append(_ask(honest, f"probe-{len(latencies)}".encode(), timeout_s=1.0))
            time.sleep(0.05)
            assert len(latencies) < 2000, "the flood never ended"
        flooder.join()
        latencies.append(_ask(honest, b"after", timeout_s=1.0))
        assert router.received[router.mallory.public] == FLOOD + 1  # every message was read
        assert len(latencies) >= 3, "the flood ended before it could be probed"
        assert max(latencies) < 1.0
        dropped = router.endpoint.dropped
        assert router.refused_sends > FLOOD // 2  # most replies to mallory could not be queued ...
        assert sum(dropped.values()) == router.refused_sends  # ... and each of them was counted
        assert router.endpoint.dropped_total == router.refused_sends
        assert len(dropped) == 1  # all of them mallory's: the honest peer lost nothing
    finally:
        started = time.monotonic()
        router.endpoint.close()
        closed_in = time.monotonic() - started
        mallory.close()
        honest.close()
    assert closed_in < 5.0


def test_other_threads_sends_arrive_in_order_during_a_flood():
    router = Router()
    mallory = router.dealer(router.mallory)
    honest = router.dealer(router.honest)
    try:
        _ask(honest, b"hello", 5)
        honest_id = router.routing_ids[router.honest.public]
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                mallory.send([b"x"])

        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            big = b"t" * (1 << 20)  # like a TRAIN request's tensors
            for index in range(200):
                payload = big if index % 10 == 0 else b"small"
                assert router.endpoint.send(honest_id, [b"request", index.to_bytes(4, "big"), payload])
            got = []
            while len(got) < 200:
                frames = honest.receive(5.0)
                assert frames is not None, f"only {len(got)} of 200 requests arrived"
                if frames[0].bytes == b"request":
                    got.append(int.from_bytes(frames[1].bytes, "big"))
        finally:
            stop.set()
            flooder.join()
        assert got == list(range(200))
        assert threading.get_ident() not in router.io_thread
    finally:
        router.endpoint.close()
        mallory.close()
        honest.close()


def test_a_request_the_peer_cannot_take_is_dropped_and_counted_not_waited_for():
    router = Router(deliver_within_s=5.0, send_wait_s=0.2, max_pending=50)  # nothing expires while it fills
    mallory = router.dealer(router.mallory)
    try:
        mallory.send([b"hi"])
        deadline = time.monotonic() + 5
        while router.mallory.public not in router.routing_ids and time.monotonic() < deadline:
            time.sleep(0.01)
        mallory_id = router.routing_ids[router.mallory.public]
        queued = 0
        with pytest.raises(EdgeUnavailable, match="still wait for the I/O thread"):  # told, not blocked for ever
            while queued < 20_000:  # far more than its pipe and TCP buffers hold: it never reads
                started = time.monotonic()
                router.endpoint.send(mallory_id, [REPLY])
                queued += 1
        assert time.monotonic() - started < 2.0  # the refused send waited about send_wait_s
        assert queued > 50
        deadline = time.monotonic() + 15
        while router.endpoint.dropped[mallory_id] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert router.endpoint.dropped[mallory_id] > 0  # undeliverable after deliver_within_s: dropped, counted
    finally:
        started = time.monotonic()
        router.endpoint.close()
        assert time.monotonic() - started < 5.0
        mallory.close()
    with pytest.raises(EdgeUnavailable):
        router.endpoint.send(b"anyone", [b"late"])  # closed: an error, never a hang


def test_zmq_errors_become_consortia_edge_errors():
    router = Router()
    try:
        with pytest.raises(EdgeFailure, match="transport: cannot bind"):
            RouterEndpoint(router.endpoint.endpoint, router.server, lambda key: True, lambda peer, frames: None)
    finally:
        router.endpoint.close()
    with pytest.raises(EdgeFailure, match="transport: cannot connect"):
        DealerEndpoint("nowhere://at-all", router.server.public, router.honest)
