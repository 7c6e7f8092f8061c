"""In-memory twin of the ZeroMQ transport: a router and dealers that pass frames through queues in one process.

It keeps what the real transport promises the run: the router's ``on_message`` runs on one I/O thread,
only admitted public keys get through, and frames are copied on the way (no shared buffers). There is
no encryption, no socket and no network: for unit tests of the run, never for integration tests.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from components.core.ports import KeyPair, Peer

_STOP = object()
log = logging.getLogger(__name__)


def _copied(frames: Sequence[Any]) -> list[bytes]:
    return [bytes(memoryview(frame.buffer if hasattr(frame, "buffer") else frame).cast("B")) for frame in frames]


class MemoryNetwork:
    """Routers bound to addresses, and dealers that connect to them; ``router`` and ``dealer`` are the factories."""

    def __init__(self) -> None:
        self._routers: dict[str, MemoryRouter] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def router(
        self,
        bind: str,
        keys: KeyPair,
        is_allowed: Callable[[str], bool],
        on_message: Callable[[Peer, list[Any]], None],
        max_message_bytes: int = 256 << 20,
    ) -> MemoryRouter:
        with self._lock:
            if bind in self._routers:
                raise OSError(f"address in use: {bind}")
            router = MemoryRouter(self, bind, keys, is_allowed, on_message)
            self._routers[bind] = router
            return router

    def dealer(self, address: str, server_public_key: str, keys: KeyPair) -> MemoryDealer:
        return MemoryDealer(self, address, server_public_key, keys, routing_id=next(self._ids).to_bytes(4, "big"))

    def _find(self, address: str) -> MemoryRouter | None:
        with self._lock:
            return self._routers.get(address)

    def _unbind(self, address: str) -> None:
        with self._lock:
            self._routers.pop(address, None)


class MemoryRouter:
    """The coordinator's end: incoming frames are handled on one I/O thread, like the real router's."""

    def __init__(
        self,
        network: MemoryNetwork,
        bind: str,
        keys: KeyPair,
        is_allowed: Callable[[str], bool],
        on_message: Callable[[Peer, list[Any]], None],
    ) -> None:
        self.endpoint = bind
        self._network = network
        self._keys = keys
        self._is_allowed = is_allowed
        self._on_message = on_message
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._dealers: dict[bytes, MemoryDealer] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="memory-router", daemon=True)
        self._thread.start()

    def send(self, routing_id: bytes, frames: Sequence[Any]) -> bool:
        """Deliver to the dealer with ``routing_id``; False (dropped) when it is gone, as a real router drops."""
        with self._lock:
            dealer = self._dealers.get(routing_id)
        if dealer is None:
            return False
        dealer._inbox.put(_copied(frames))
        return True

    def _deliver(self, dealer: MemoryDealer, frames: Sequence[Any]) -> None:
        if dealer.server_public_key != self._keys.public or not self._is_allowed(dealer.keys.public):
            return  # the real transport's CURVE handshake and ZAP refuse these silently
        with self._lock:
            self._dealers[dealer.routing_id] = dealer
        self._inbox.put((Peer(dealer.routing_id, dealer.keys.public), _copied(frames)))

    def _serve(self) -> None:
        while (item := self._inbox.get()) is not _STOP:
            peer, frames = item
            try:
                self._on_message(peer, frames)
            except Exception:  # the coordinator never dies from what a party sends
                log.exception("handler failed on a message from %s", peer.public_key)

    def close(self) -> None:
        self._network._unbind(self.endpoint)
        self._inbox.put(_STOP)
        self._thread.join(timeout=5)


class MemoryDealer:
    """A party's end: sends go to the router bound at ``address`` (dropped while none is), replies queue here."""

    def __init__(
        self, network: MemoryNetwork, address: str, server_public_key: str, keys: KeyPair, routing_id: bytes
    ) -> None:
        self._network = network
        self.address = address
        self.server_public_key = server_public_key
        self.keys = keys
        self.routing_id = routing_id
        self._inbox: queue.SimpleQueue[list[bytes]] = queue.SimpleQueue()

    def send(self, frames: Sequence[Any]) -> None:
        router = self._network._find(self.address)
        if router is not None:
            router._deliver(self, frames)

    def receive(self, timeout_s: float) -> list[Any] | None:
        try:
            return self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        return None
