"""A TCP relay on 127.0.0.1 that counts the bytes crossing it: what goes over the wire, whatever the protocol."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

CHUNK = 1 << 20


class CountingRelay:
    """``with CountingRelay(target_port) as relay:`` clients dial ``relay.port`` instead of ``target_port``.

    ``upstream`` counts bytes from clients to the target, ``downstream`` bytes back, on every
    connection made while the relay ran (TCP payload: everything the protocols send, headers included).
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.2)  # so the accept loop notices a stop
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._counts = {"upstream": 0, "downstream": 0}
        self._sockets: list[socket.socket] = []
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="relay-accept", daemon=True)

    @property
    def upstream(self) -> int:
        return self._counts["upstream"]

    @property
    def downstream(self) -> int:
        return self._counts["downstream"]

    def reset(self) -> None:
        """Count from zero again (connections stay open): the next run's bytes only."""
        with self._lock:
            self._counts = dict.fromkeys(self._counts, 0)

    def __enter__(self) -> CountingRelay:
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            client.settimeout(None)
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            for source, sink, direction in ((client, server, "upstream"), (server, client, "downstream")):
                threading.Thread(target=self._pump, args=(source, sink, direction), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while (size := source.recv_into(buffer)) > 0:
                sink.sendall(view[:size])
                with self._lock:
                    self._counts[direction] += size
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._acceptor.join(timeout=2)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
