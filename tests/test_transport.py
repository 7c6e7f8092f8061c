"""CURVE transport on real sockets: registered keys get answers, unknown keys get nothing."""

import threading

import numpy as np
import pytest

from components.adapters.transport import DealerEndpoint, new_keypair
from components.core.errors import UpdateRejected
from components.core.protocol import Envelope, Kind, decode, encode
from components.run.coordinator import Coordinator

pytestmark = pytest.mark.integration


@pytest.fixture
def coordinator():
    server, party = new_keypair(), new_keypair()
    coord = Coordinator(bind="tcp://127.0.0.1:*", keys=server, party_keys={party.public: "alpha"})
    yield coord, server, party
    coord.close()


def _hello(sender: str = "alpha") -> list:
    return encode(Envelope(kind=Kind.HELLO, sender=sender, body={"manifest": {}}))


def test_registered_party_is_welcomed(coordinator):
    coord, server, party = coordinator
    dealer = DealerEndpoint(coord.endpoint, server.public, party)
    try:
        dealer.send(_hello())
        frames = dealer.receive(timeout_s=5)
        assert frames is not None
        envelope, _ = decode(frames)
        assert envelope.kind is Kind.WELCOME
        assert coord.wait_for_parties(["alpha"], 1, timeout_s=5, wait_for_all=True) == ["alpha"]
    finally:
        dealer.close()


def test_unknown_key_gets_no_reply(coordinator):
    coord, server, _ = coordinator
    stranger = DealerEndpoint(coord.endpoint, server.public, new_keypair())
    try:
        stranger.send(_hello())
        assert stranger.receive(timeout_s=1.5) is None
        assert coord.parties["alpha"].routing_id is None
    finally:
        stranger.close()


def test_hostile_message_gets_typed_error_and_is_counted(coordinator):
    coord, server, party = coordinator
    dealer = DealerEndpoint(coord.endpoint, server.public, party)
    try:
        dealer.send([b"\x80\x04not json"])
        envelope, _ = decode(dealer.receive(timeout_s=5))
        assert envelope.kind is Kind.ERROR and envelope.body["code"] == "envelope"
        dealer.send(_hello(sender="beta"))  # claims another party's name
        envelope, _ = decode(dealer.receive(timeout_s=5))
        assert envelope.body["code"] == "sender"
        assert coord.rejected["alpha"] == 2
    finally:
        dealer.close()


def test_exchange_collects_checked_replies_and_drops_bad_tensors(coordinator):
    coord, server, party = coordinator
    dealer = DealerEndpoint(coord.endpoint, server.public, party)
    try:
        dealer.send(_hello())
        assert decode(dealer.receive(timeout_s=5))[0].kind is Kind.WELCOME

        def reject_nan(envelope, tensors):
            if not np.isfinite(tensors["w"]).all():
                raise UpdateRejected("non-finite values in 'w'")

        result = {}
        worker = threading.Thread(
            target=lambda: result.update(
                x=coord.exchange(["alpha"], Kind.TRAIN, "run", 1, {}, {"w": np.ones(2, np.float32)}, 5, reject_nan)
            )
        )
        worker.start()
        request, tensors = decode(dealer.receive(timeout_s=5))
        assert request.kind is Kind.TRAIN and tensors["w"].tolist() == [1.0, 1.0]
        reply = request.reply(Kind.UPDATE, "alpha", {"num_examples": 3})
        dealer.send(encode(reply, {"w": np.array([np.nan, 1.0], np.float32)}))
        worker.join(10)
        exchange = result["x"]
        assert exchange.replies == {}
        assert "non-finite" in exchange.errors["alpha"]
        assert coord.rejected["alpha"] == 1
    finally:
        dealer.close()
