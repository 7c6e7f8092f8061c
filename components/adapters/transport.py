"""ZeroMQ transport (the only module importing zmq): CURVE-secured ROUTER and DEALER endpoints.

The coordinator's ROUTER lives on one I/O thread, the only thread that ever touches the network
socket, and that thread never waits on anything (``NOBLOCK`` everywhere):

* a send made *on* the I/O thread (a reply from ``on_message``) goes straight to the ROUTER with
  ``NOBLOCK``; when the peer's pipe is full (the peer stops reading) the reply is dropped and
  counted in ``RouterEndpoint.dropped``. Queueing it instead would let a peer that floods without
  reading grow the coordinator's memory, or (as a blocking queue did) stall the thread that is
  the only one able to drain the queue;
* a send made by *another* thread (the flow's requests, big tensors included) is appended to a
  bounded in-memory outbox that the I/O thread moves into one FIFO per peer and hands to the
  ROUTER as the peer's pipe has room. The sender waits only for room in the outbox (bounded by
  ``send_wait_s``, then ``EdgeUnavailable``); a message the peer's pipe cannot take within
  ``deliver_within_s`` is dropped, counted and logged, so the party shows up as missing.

The I/O thread handles at most ``RECEIVE_BATCH`` incoming messages before it serves the outbox
again, so a flood of incoming messages cannot hold back the requests of a round. zmq errors are
mapped to ``EdgeFailure`` (bad address, address in use, bad keys) or ``EdgeUnavailable`` (what a
retry may cure), with ``edge="transport"``. Frames are sent and received without copies.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
import zmq.utils.z85
from zmq.auth.thread import ThreadAuthenticator

from components.core.errors import ConfigError, EdgeFailure, EdgeUnavailable
from components.core.ports import KeyPair, Peer

log = logging.getLogger(__name__)

EDGE = "transport"
RECONNECT_MS = 200
RECONNECT_MAX_MS = 5_000
SEND_WAIT_S = 5.0  # how long another thread's send may wait for room in the outbox
DELIVER_WITHIN_S = 10.0  # a queued message the peer's pipe cannot take by then is dropped
MAX_PENDING = 10_000  # messages from other threads not yet handed to the ROUTER (outbox + per-peer queues)
RECEIVE_BATCH = 256  # incoming messages handled before the outbox is served again
CLOSE_FLUSH_S = 1.0  # close() spends at most this long handing queued messages (e.g. SHUTDOWN) to the ROUTER
CLOSE_LINGER_MS = 500  # then libzmq gets this long to write them out
ACCEPT_BACKLOG = 4096  # TCP connections waiting to be accepted (the kernel caps it at net.core.somaxconn)
_TRANSIENT = {errno.EAGAIN, errno.EINTR, errno.EHOSTUNREACH, errno.ENOBUFS, errno.ENOMEM, zmq.ETERM}


def edge_error(what: str, error: zmq.ZMQError) -> EdgeFailure | EdgeUnavailable:
    """A zmq error as Consortia's error: ``EdgeUnavailable`` if a retry may cure it, else ``EdgeFailure``."""
    message = f"{what}: {error.strerror} (errno {error.errno})"
    return EdgeUnavailable(EDGE, message) if error.errno in _TRANSIENT else EdgeFailure(EDGE, message)


def new_keypair() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public=public.decode("ascii"), secret=secret.decode("ascii"))


def keypair_paths(directory: Path, name: str) -> tuple[Path, Path]:
    """Where ``write_keypair`` puts ``name``'s public and secret key."""
    return directory / f"{name}.key", directory / f"{name}.key_secret"


def write_keypair(directory: Path, name: str, overwrite: bool = False) -> tuple[Path, Path]:
    """Create ``name.key`` (public) and ``name.key_secret`` (secret, mode 600) in ``directory``; an existing
    pair is replaced only with ``overwrite`` (``ConfigError`` otherwise: whoever trusts its public key would
    lose the connection)."""
    existing = [path for path in keypair_paths(directory, name) if path.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists: keeping the key pair (pass --force to replace it)")
    directory.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
    Path(secret_path).chmod(0o600)
    return Path(public_path), Path(secret_path)


def check_public_key(text: str, what: str = "the key") -> str:
    """``text`` if it is a CURVE public key (40 Z85 characters, 32 bytes), else ``ConfigError`` in one line."""
    hint = "; paste it in single quotes ('...'), so that the shell does not expand $ or !"
    if len(text) != 40:
        raise ConfigError(f"{what} has {len(text)} characters, a CURVE public key has 40{hint}")
    try:
        zmq.utils.z85.decode(text.encode("ascii"))
    except (ValueError, KeyError, UnicodeEncodeError):
        raise ConfigError(f"{what} is not a Z85 CURVE public key{hint}") from None
    return text


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


@dataclass
class _Outgoing:
    frames: list[Any]  # routing id first
    deadline: float  # monotonic time after which the message is dropped if the peer's pipe is still full


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


class RouterEndpoint:
    """The coordinator's bound ROUTER socket with CURVE authentication, served by one I/O thread.

    ``on_message(peer, frames)`` runs on the I/O thread for every message from an admitted peer;
    exceptions it raises are logged and never stop the thread. ``dropped`` counts, per routing id,
    the messages that were never handed to the peer (pipe full, peer gone, endpoint closing);
    ``received`` and ``sent`` count the messages read from and handed to the ROUTER.
    """

    def __init__(
        self,
        bind: str,
        keys: KeyPair,
        is_allowed: Callable[[str], bool],
        on_message: Callable[[Peer, list[Any]], None],
        max_message_bytes: int = 256 << 20,
        send_wait_s: float = SEND_WAIT_S,
        deliver_within_s: float = DELIVER_WITHIN_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.dropped: Counter[bytes] = Counter()
        self.received = 0  # written by the I/O thread only
        self.sent = 0
        self._on_message = on_message
        self._send_wait_s = send_wait_s
        self._deliver_within_s = deliver_within_s
        self._max_pending = max_pending
        self._queue: deque[_Outgoing] = deque()  # from other threads, guarded by _room
        self._pending = 0  # queued + waiting in _backlog, guarded by _room
        self._room = threading.Condition()
        self._closing = False
        self._release_on_exit = False
        self._backlog: dict[bytes, deque[_Outgoing]] = {}  # I/O thread only: per peer, in order
        self._handler_failures = 0
        self._context = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._router: zmq.Socket | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            self._auth = ThreadAuthenticator(self._context, log=logging.getLogger("consortia.zap"))
            self._auth.start()
            self._auth.configure_curve_callback(domain="*", credentials_provider=_KeyCheck(is_allowed))
            self._router = self._context.socket(zmq.ROUTER)
            self._router.curve_server = True
            self._router.curve_secretkey = keys.secret.encode("ascii")
            self._router.curve_publickey = keys.public.encode("ascii")
            self._router.maxmsgsize = 2 * max_message_bytes  # beyond this libzmq drops the peer; below, decode counts
            self._router.router_mandatory = True  # an unroutable send raises (counted) instead of vanishing
            self._router.linger = 0
            self._router.backlog = ACCEPT_BACKLOG  # libzmq's 100 would refuse a burst of parties connecting at once
            self._router.bind(bind)
            self.endpoint: str = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as error:
            self._release()
            raise edge_error(f"cannot bind {bind}", error) from error
        self._thread = threading.Thread(target=self._serve, name="consortia-router", daemon=True)
        self._thread.start()

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    # ---- any thread ----
    def send(self, routing_id: bytes, frames: Sequence[Any]) -> bool:
        """Send (on the I/O thread) or queue (other threads) a message for a peer, without copying frames.

        On the I/O thread this never waits: False means the peer could not take the message now and
        it was dropped (counted). Other threads wait at most ``send_wait_s`` for room in the outbox,
        then get ``EdgeUnavailable``; True means queued, to be delivered in order."""
        if threading.get_ident() == self._thread.ident:
            return self._send_now(routing_id, frames)
        with self._room:
            if not self._closing and self._pending >= self._max_pending:
                self._room.wait_for(lambda: self._closing or self._pending < self._max_pending, self._send_wait_s)
            if self._closing:
                raise EdgeUnavailable(EDGE, "the coordinator's endpoint is closed")
            if self._pending >= self._max_pending:
                raise EdgeUnavailable(
                    EDGE, f"{self._pending} messages still wait for the I/O thread after {self._send_wait_s:.1f}s"
                )
            self._pending += 1
            self._queue.append(_Outgoing([routing_id, *frames], time.monotonic() + self._deliver_within_s))
            self._wake()
        return True

    def close(self) -> None:
        """Stop serving: hand what is queued to the ROUTER (at most ~1 s), then release everything.

        Returns within a few seconds whatever the peers do."""
        with self._room:
            if self._closing:
                return
            self._closing = True
            self._room.notify_all()
            self._wake()
        if threading.get_ident() == self._thread.ident:
            self._release_on_exit = True  # called from on_message: the thread releases all when it stops
            return
        self._thread.join(timeout=CLOSE_FLUSH_S + 3)
        if self._thread.is_alive():  # a handler is stuck: leave the (daemon) thread its socket and context
            log.error("the router's I/O thread did not stop within %.0fs; leaving it behind", CLOSE_FLUSH_S + 3)
            return
        self._release()

    def _wake(self) -> None:
        """Make the I/O thread's poll return (called holding ``_room``, so never after ``_release``)."""
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
            os.write(self._wake_w, b"\0")

    def _release(self) -> None:
        if self._router is not None and not self._router.closed:
            self._router.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()
        with self._room:
            os.close(self._wake_r)
            os.close(self._wake_w)

    # ---- I/O thread ----
    def _send_now(self, routing_id: bytes, frames: Sequence[Any]) -> bool:
        if self._closing or self._router is None or self._router.closed:
            self._drop(routing_id, "the endpoint is closing", quiet=True)
            return False
        if self._backlog.get(routing_id):  # never overtake what waits for this peer: it is not reading anyway
            self._drop(routing_id, "its pipe is full", quiet=True)
            return False
        try:
            self._router.send_multipart([routing_id, *frames], flags=zmq.NOBLOCK, copy=False)
            self.sent += 1
            return True
        except zmq.Again:
            self._drop(routing_id, "its pipe is full", quiet=True)
        except zmq.ZMQError as error:
            self._drop(routing_id, error.strerror, quiet=True)
        return False

    def _drop(self, routing_id: bytes, why: str, quiet: bool) -> None:
        self.dropped[routing_id] += 1
        count = self.dropped[routing_id]
        if not quiet or _is_power_of_ten(count):  # replies from a flood: 1st, 10th, 100th ... not each
            log.warning("dropped a message to peer %s (%s); %d dropped so far", routing_id.hex(), why, count)

    def _serve(self) -> None:
        assert self._router is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while not self._closing:
            try:
                self._serve_outgoing()
                ready = dict(poller.poll(10 if self._backlog else 100))
                if self._wake_r in ready:
                    self._drain_wakeups()
                if self._router in ready:
                    self._receive_incoming(RECEIVE_BATCH)
            except zmq.ZMQError as error:
                if error.errno == zmq.ETERM:
                    return
                log.exception("the router's I/O loop hit a zmq error; serving on")
                time.sleep(0.01)
            except Exception:  # the I/O thread must survive anything
                log.exception("the router's I/O loop failed; serving on")
                time.sleep(0.01)
        self._finish()
        if self._release_on_exit:
            self._release()

    def _finish(self) -> None:
        """Hand what other threads queued (e.g. the SHUTDOWN broadcast) to the ROUTER, briefly; drop the rest."""
        assert self._router is not None
        deadline = time.monotonic() + CLOSE_FLUSH_S
        try:
            self._serve_outgoing()
            while self._backlog and time.monotonic() < deadline:
                time.sleep(0.01)
                self._serve_outgoing()
        except zmq.ZMQError:
            log.exception("could not flush the outbox at close")
        with self._room:
            rest = list(self._queue)
            self._queue.clear()
        rest += [item for items in self._backlog.values() for item in items]
        self._backlog.clear()
        for item in rest:
            self._drop(item.frames[0], "the endpoint closed before the peer took it", quiet=True)
        if rest:
            log.warning("closed with %d messages undelivered", len(rest))
        self._router.close(linger=CLOSE_LINGER_MS)

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _serve_outgoing(self) -> None:
        assert self._router is not None
        with self._room:
            taken = list(self._queue)
            self._queue.clear()
        for item in taken:
            self._backlog.setdefault(item.frames[0], deque()).append(item)
        if not self._backlog:
            return
        now = time.monotonic()
        done = 0
        for routing_id in list(self._backlog):
            items = self._backlog[routing_id]
            while items:
                item = items[0]
                try:
                    self._router.send_multipart(item.frames, flags=zmq.NOBLOCK, copy=False)
                    self.sent += 1
                except zmq.Again:
                    if now < item.deadline:
                        break  # the peer's pipe is full: try again on the next turn
                    self._drop(routing_id, f"its pipe stayed full for {self._deliver_within_s:.0f}s", quiet=False)
                except zmq.ZMQError as error:  # EHOSTUNREACH: the peer is gone
                    self._drop(routing_id, error.strerror, quiet=False)
                items.popleft()
                done += 1
            if not items:
                del self._backlog[routing_id]
        if done:
            with self._room:
                self._pending -= done
                self._room.notify_all()

    def _receive_incoming(self, limit: int) -> None:
        assert self._router is not None
        for _ in range(limit):
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.received += 1
            if len(frames) < 2:
                continue
            peer = Peer(routing_id=frames[0].bytes, public_key=frames[1].get("User-Id"))
            try:
                self._on_message(peer, frames[1:])
            except Exception:  # the coordinator never dies from what a party sends
                self._handler_failures += 1
                if _is_power_of_ten(self._handler_failures):
                    log.exception(
                        "handler failed on a message from %s (%d failures so far)",
                        peer.public_key,
                        self._handler_failures,
                    )


def _dealer_socket(
    context: zmq.Context,
    address: str,
    server_public_key: str,
    keys: KeyPair,
    linger_ms: int,
    send_timeout_ms: int | None,
) -> zmq.Socket:
    """A DEALER with its own CURVE identity (``keys``), connecting to ``address``; reconnects with back-off."""
    socket = context.socket(zmq.DEALER)
    try:
        socket.curve_serverkey = server_public_key.encode("ascii")
        socket.curve_publickey = keys.public.encode("ascii")
        socket.curve_secretkey = keys.secret.encode("ascii")
        socket.reconnect_ivl = RECONNECT_MS
        socket.reconnect_ivl_max = RECONNECT_MAX_MS
        socket.linger = linger_ms
        socket.sndtimeo = -1 if send_timeout_ms is None else send_timeout_ms
        socket.connect(address)
    except zmq.ZMQError:
        socket.close(linger=0)
        raise
    return socket


def _receive(socket: zmq.Socket, timeout_s: float) -> list[Any] | None:
    try:
        if socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            return socket.recv_multipart(copy=False)
    except zmq.ZMQError as error:
        raise edge_error("cannot receive from the coordinator", error) from error
    return None


def _send(socket: zmq.Socket, frames: Sequence[Any]) -> None:
    try:
        socket.send_multipart(list(frames), copy=False)
    except zmq.ZMQError as error:
        raise edge_error("cannot send to the coordinator", error) from error


class DealerEndpoint:
    """A party's DEALER socket, connected to the coordinator with CURVE; reconnects with back-off.

    ``linger_ms``: how long ``close`` may wait for unsent messages to go out; ``send_timeout_ms``: how long
    ``send`` may wait while the connection is full (then ``EdgeUnavailable``); None waits as long as it takes."""

    def __init__(
        self,
        address: str,
        server_public_key: str,
        keys: KeyPair,
        linger_ms: int = 1000,
        send_timeout_ms: int | None = None,
    ) -> None:
        self._context = zmq.Context()
        try:
            self._socket = _dealer_socket(self._context, address, server_public_key, keys, linger_ms, send_timeout_ms)
        except zmq.ZMQError as error:
            self._context.destroy(linger=0)
            raise edge_error(f"cannot connect to {address}", error) from error

    def send(self, frames: Sequence[Any]) -> None:
        _send(self._socket, frames)

    def receive(self, timeout_s: float) -> list[Any] | None:
        """The next message's frames, or None after ``timeout_s`` without one."""
        return _receive(self._socket, timeout_s)

    def close(self) -> None:
        self._socket.close()
        self._context.term()


class PooledDealer:
    """One party's connection in a ``DealerPool``: a DEALER of its own (its own CURVE identity) on the pool's
    context. Used from the pool's one thread only, like every zmq socket."""

    def __init__(self, pool: DealerPool, socket: zmq.Socket) -> None:
        self._pool = pool
        self._socket = socket

    def send(self, frames: Sequence[Any]) -> None:
        _send(self._socket, frames)

    def receive(self, timeout_s: float) -> list[Any] | None:
        return _receive(self._socket, timeout_s)

    def close(self) -> None:
        self._pool.forget(self)
        self._socket.close()


class DealerPool:
    """Many parties' DEALER sockets on one zmq context and one poller: a simulation runs hundreds of party
    agents from one thread (``consortia simulate``). Each socket is a distinct CURVE identity dialling the
    coordinator exactly as a ``DealerEndpoint`` does; only the context (its I/O thread) and the poll are shared."""

    def __init__(self, linger_ms: int = 1000, send_timeout_ms: int = 1000) -> None:
        self._context = zmq.Context()
        self._context.max_sockets = 65_536  # libzmq's default is 1,023 per context
        self._poller = zmq.Poller()
        self._dealers: dict[zmq.Socket, PooledDealer] = {}
        self._linger_ms = linger_ms
        self._send_timeout_ms = send_timeout_ms  # one connection that cannot send must not hold up the others

    def open(self, address: str, server_public_key: str, keys: KeyPair) -> PooledDealer:
        """A new connection for the party holding ``keys`` (a ``DealerFactory``)."""
        try:
            socket = _dealer_socket(
                self._context, address, server_public_key, keys, self._linger_ms, self._send_timeout_ms
            )
        except zmq.ZMQError as error:
            raise edge_error(f"cannot connect to {address}", error) from error
        dealer = PooledDealer(self, socket)
        self._dealers[socket] = dealer
        self._poller.register(socket, zmq.POLLIN)
        return dealer

    def forget(self, dealer: PooledDealer) -> None:
        if self._dealers.pop(dealer._socket, None) is not None:
            self._poller.unregister(dealer._socket)

    def ready(self, timeout_s: float) -> list[PooledDealer]:
        """The connections with a message waiting, after at most ``timeout_s``."""
        try:
            events = self._poller.poll(int(timeout_s * 1000))
        except zmq.ZMQError as error:
            raise edge_error("cannot poll the coordinator connections", error) from error
        return [self._dealers[socket] for socket, _ in events if socket in self._dealers]

    def close(self) -> None:
        for dealer in list(self._dealers.values()):
            dealer.close()
        self._context.term()
