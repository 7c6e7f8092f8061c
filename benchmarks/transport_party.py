"""The party side of the transport benchmark, in a module of its own so its spawned processes start fast.

It imports only pyzmq and Consortia's codec and transport (no torch): the message bodies it sends
are built by the coordinator side and passed in.
"""

from __future__ import annotations

from typing import Any, Literal

import zmq

from components.adapters.transport import DealerEndpoint, KeyPair
from components.core.protocol import Envelope, Kind, decode, encode

Way = Literal["raw", "protocol", "raw-curve", "consortia"]
PARTY = "party"


def respond(
    way: Way, address: str, server_public: str, keys: KeyPair, hello: dict[str, Any], update: dict[str, Any]
) -> None:
    """Answer every message until told to stop: echo frames (raw) or a decoded-and-re-encoded UPDATE."""
    if way == "consortia":
        endpoint = DealerEndpoint(address, server_public, keys)
        endpoint.send(encode(Envelope(kind=Kind.HELLO, sender=PARTY, body=hello)))
        while True:
            frames = endpoint.receive(timeout_s=60)
            if frames is None:
                break
            request, tensors = decode(frames)
            if request.kind == Kind.SHUTDOWN:
                break
            if request.kind == Kind.TRAIN:
                endpoint.send(encode(request.reply(Kind.UPDATE, PARTY, update), tensors))
        endpoint.close()
        return
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    if way == "raw-curve":
        socket.curve_serverkey = server_public.encode()
        socket.curve_publickey = keys.public.encode()
        socket.curve_secretkey = keys.secret.encode()
    socket.linger = 1000
    socket.connect(address)
    socket.send(b"ready")
    while True:
        frames = socket.recv_multipart(copy=False)
        if len(frames) == 1 and frames[0].bytes == b"stop":
            break
        if way == "protocol":
            request, tensors = decode(frames)
            frames = encode(request.reply(Kind.UPDATE, PARTY, update), tensors)
        socket.send_multipart(frames, copy=False)
    socket.close()
    context.term()
