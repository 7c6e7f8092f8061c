"""Requests carrying the model go out in waves: at most max_inflight_bytes of them unanswered at once."""

from __future__ import annotations

import threading
import time

import numpy as np

from components.adapters.transport import new_keypair
from components.core.protocol import Envelope, Kind, decode, encode
from components.core.protocol.bodies import Hello
from components.run.coordinator import Coordinator
from components.twins.transport import MemoryNetwork

MODEL = {"w": np.zeros(1000, dtype=np.float32)}  # about 4 KB a request


def test_with_room_for_one_request_each_party_gets_the_model_only_after_the_previous_one_answered():
    network = MemoryNetwork()
    server = new_keypair()
    keys = {name: new_keypair() for name in ("a", "b", "c")}
    coordinator = Coordinator(
        bind="mem://coordinator",
        keys=server,
        party_keys={k.public: name for name, k in keys.items()},
        router=network.router,
        max_inflight_bytes=1,  # smaller than one request: one at a time
    )
    order: list[str] = []  # "got X" when X received its request, "answered X" when it replied
    lock = threading.Lock()
    dealers = {name: network.dealer("mem://coordinator", server.public, k) for name, k in keys.items()}

    def party(name: str) -> None:
        dealer = dealers[name]
        dealer.send(encode(Envelope(kind=Kind.HELLO, sender=name, body=Hello(manifest={}).model_dump())))
        while (frames := dealer.receive(10.0)) is not None:
            request, tensors = decode(frames)
            if request.kind != Kind.TRAIN:
                continue
            with lock:
                order.append(f"got {name}")
            time.sleep(0.2)  # training: with room for all, every party would have its request by now
            reply = request.reply(Kind.UPDATE, name, {"num_examples": 1})
            with lock:
                order.append(f"answered {name}")
            dealer.send(encode(reply, tensors))
            return

    threads = [threading.Thread(target=party, args=(name,), daemon=True) for name in keys]
    for thread in threads:
        thread.start()
    try:
        assert coordinator.wait_for_parties(list(keys), 3, 10.0, wait_for_all=True) == ["a", "b", "c"]
        exchange = coordinator.exchange(["a", "b", "c"], Kind.TRAIN, "run", 1, {}, tensors=MODEL, timeout_s=20)
        assert sorted(exchange.replies) == ["a", "b", "c"] and not exchange.missing
        assert order == ["got a", "answered a", "got b", "answered b", "got c", "answered c"]
        assert exchange.bytes_down > 3 * MODEL["w"].nbytes
    finally:
        for thread in threads:
            thread.join(timeout=5)
        coordinator.close()
