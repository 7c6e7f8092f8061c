"""ZeroMQ transport (the only module importing zmq): CURVE-secured ROUTER and DEALER endpoints.

The coordinator's ROUTER lives on one I/O thread; other threads hand it outgoing messages
through an in-process queue socket, so the network socket is only ever touched by one thread.
Frames are sent and received without copies (``copy=False``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from components.core.ports import KeyPair, Peer

log = logging.getLogger(__name__)

RECONNECT_MS = 200
RECONNECT_MAX_MS = 5_000


def new_keypair() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public=public.decode("ascii"), secret=secret.decode("ascii"))


def write_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Create ``name.key`` (public) and ``name.key_secret`` (secret, mode 600) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
    Path(secret_path).chmod(0o600)
    return Path(public_path), Path(secret_path)


def read_keypair(secret_path: Path) -> KeyPair:
    public, secret = zmq.auth.load_certificate(str(secret_path))
    if secret is None:
        raise ValueError(f"{secret_path} holds no secret key")
    return KeyPair(public=public.decode("ascii"), secret=secret.decode("ascii"))


def read_public_key(path: Path) -> str:
    public, _ = zmq.auth.load_certificate(str(path))
    return public.decode("ascii")


class _KeyCheck:
    """ZAP credentials provider: admits a CURVE client only if ``is_allowed(z85_key)``."""

    def __init__(self, is_allowed: Callable[[str], bool]) -> None:
        self._is_allowed = is_allowed

    def callback(self, domain: str, key: bytes) -> bool:
        return self._is_allowed(key.decode("ascii"))


class RouterEndpoint:
    """The coordinator's bound ROUTER socket with CURVE authentication, served by one I/O thread.

    ``on_message(peer, frames)`` runs on the I/O thread for every message from an admitted peer;
    exceptions it raises are logged and never stop the thread.
    """

    def __init__(
        self,
        bind: str,
        keys: KeyPair,
        is_allowed: Callable[[str], bool],
        on_message: Callable[[Peer, list[Any]], None],
        max_message_bytes: int = 256 << 20,
    ) -> None:
        self._context = zmq.Context()
        self._auth = ThreadAuthenticator(self._context, log=logging.getLogger("consortia.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=_KeyCheck(is_allowed))
        self._router = self._context.socket(zmq.ROUTER)
        self._router.curve_server = True
        self._router.curve_secretkey = keys.secret.encode("ascii")
        self._router.curve_publickey = keys.public.encode("ascii")
        self._router.maxmsgsize = 2 * max_message_bytes  # beyond this libzmq drops the peer; below, decode counts it
        self._router.router_mandatory = True
        self._router.linger = 0
        self._router.bind(bind)
        self.endpoint: str = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        outbox = f"inproc://outbox-{id(self)}"
        self._outbox_in = self._context.socket(zmq.PULL)
        self._outbox_in.bind(outbox)
        self._outbox = self._context.socket(zmq.PUSH)
        self._outbox.connect(outbox)
        self._outbox_lock = threading.Lock()
        self._on_message = on_message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="consortia-router", daemon=True)
        self._thread.start()

    def send(self, routing_id: bytes, frames: Sequence[Any]) -> None:
        """Queue a message for a peer (thread-safe, no copy of the frames)."""
        with self._outbox_lock:
            self._outbox.send_multipart([routing_id, *frames], copy=False)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._outbox_in, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(100))
            if self._outbox_in in ready:
                self._forward_outgoing()
            if self._router in ready:
                self._receive_incoming()

    def _forward_outgoing(self) -> None:
        while True:
            try:
                message = self._outbox_in.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:  # never block: a peer that stops reading must not stall the coordinator
                self._router.send_multipart(message, flags=zmq.NOBLOCK, copy=False)
            except zmq.ZMQError as error:
                log.warning("dropped a message to an unreachable or saturated peer: %s", error)

    def _receive_incoming(self) -> None:
        while True:
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            peer = Peer(routing_id=frames[0].bytes, public_key=frames[1].get("User-Id"))
            try:
                self._on_message(peer, frames[1:])
            except Exception:  # the coordinator never dies from what a party sends
                log.exception("handler failed on a message from %s", peer.public_key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in (self._outbox, self._outbox_in, self._router):
            sock.close(linger=0)
        self._auth.stop()
        self._context.term()


class DealerEndpoint:
    """A party's DEALER socket, connected to the coordinator with CURVE; reconnects with back-off."""

    def __init__(self, address: str, server_public_key: str, keys: KeyPair) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.curve_serverkey = server_public_key.encode("ascii")
        self._socket.curve_publickey = keys.public.encode("ascii")
        self._socket.curve_secretkey = keys.secret.encode("ascii")
        self._socket.reconnect_ivl = RECONNECT_MS
        self._socket.reconnect_ivl_max = RECONNECT_MAX_MS
        self._socket.linger = 1000
        self._socket.connect(address)

    def send(self, frames: Sequence[Any]) -> None:
        self._socket.send_multipart(list(frames), copy=False)

    def receive(self, timeout_s: float) -> list[Any] | None:
        """The next message's frames, or None after ``timeout_s`` without one."""
        if self._socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            return self._socket.recv_multipart(copy=False)
        return None

    def close(self) -> None:
        self._socket.close()
        self._context.term()
