"""CURVE transport on real sockets: registered keys get answers, unknown keys get nothing."""

import threading
import time

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


def test_a_party_flooding_bad_messages_without_reading_is_counted_throttled_and_does_not_stall_others(caplog):
    server, mallory_keys, alpha_keys = new_keypair(), new_keypair(), new_keypair()
    coord = Coordinator(
        bind="tcp://127.0.0.1:*",
        keys=server,
        party_keys={alpha_keys.public: "alpha", mallory_keys.public: "mallory"},
    )
    mallory = DealerEndpoint(coord.endpoint, server.public, mallory_keys, linger_ms=0)
    alpha = DealerEndpoint(coord.endpoint, server.public, alpha_keys)
    flood = [[b"\x80not json"], encode(Envelope(kind=Kind.TRAIN, sender="mallory")), _hello(sender="alpha")]
    count = 20_001
    try:
        alpha.send(_hello())
        assert decode(alpha.receive(timeout_s=5))[0].kind is Kind.WELCOME
        flooder = threading.Thread(target=lambda: [mallory.send(flood[i % 3]) for i in range(count)])
        with caplog.at_level("INFO", logger="components.run.coordinator"):
            flooder.start()
            result = {}
            worker = threading.Thread(
                target=lambda: result.update(x=coord.exchange(["alpha"], Kind.EVALUATE, "run", 1, {}, timeout_s=5))
            )
            worker.start()
            request, _ = decode(alpha.receive(timeout_s=2))  # the request got through the flood at once
            assert request.kind is Kind.EVALUATE
            alpha.send(encode(request.reply(Kind.EVALUATION, "alpha", {"metrics": {}, "num_examples": 1})))
            worker.join(5)
            assert list(result["x"].replies) == ["alpha"], result["x"]
            flooder.join(60)
            deadline = time.monotonic() + 30  # open until all is read: a close would reset what is still in flight
            while coord.rejected["mallory"] < count and time.monotonic() < deadline:
                time.sleep(0.05)
        assert coord.rejected["mallory"] == count  # every message was read and counted ...
        assert coord.throttled["mallory"] > count - 1000  # ... and hardly any answered
        assert coord.rejected_codes[("mallory", "envelope")] == 6667
        assert coord.rejected_codes[("mallory", "kind")] == 6667
        assert coord.rejected_codes[("mallory", "sender")] == 6667
        assert coord.rejected["alpha"] == 0 and coord.throttled["alpha"] == 0
    finally:
        alpha.close()
        mallory.close()
        started = time.monotonic()
        with caplog.at_level("INFO", logger="components.run.coordinator"):
            coord.close()
        assert time.monotonic() - started < 5
    lines = [r.getMessage() for r in caplog.records]
    one_by_one = sum(line.startswith("rejected a message from mallory") for line in lines)
    summarised = sum(int(line.split()[0]) for line in lines if "more messages from mallory not logged" in line)
    assert one_by_one + summarised == count
    assert one_by_one < 200
    assert "rejections from mallory: 20001 in total" in lines[-1]


def test_a_burst_of_queued_heartbeats_gets_one_hello_request_and_no_throttling(coordinator):
    coord, server, party = coordinator
    dealer = DealerEndpoint(coord.endpoint, server.public, party)
    try:
        beat = encode(Envelope(kind=Kind.HEARTBEAT, sender="alpha", body={}))
        for _ in range(100):  # what a party queued while no coordinator listened
            dealer.send(beat)
        envelope, _ = decode(dealer.receive(timeout_s=5))
        assert envelope.kind is Kind.ERROR and envelope.body["code"] == "hello_required"
        assert dealer.receive(timeout_s=0.5) is None  # one hello answers them all
        dealer.send(_hello())
        assert decode(dealer.receive(timeout_s=5))[0].kind is Kind.WELCOME
        assert coord.throttled["alpha"] == 0 and coord.rejected["alpha"] == 0
    finally:
        dealer.close()
