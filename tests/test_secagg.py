"""Secure aggregation: codec, PRG, sharing, the round's state machines, and what the coordinator can see."""

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from components.core.errors import ProtocolError, QuorumNotReached
from components.core.secagg import (
    FixedPoint,
    KeyRoster,
    MaskedInput,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    UnmaskShares,
)
from components.core.secagg.keys import agree, private_key_from_bytes, public_key_bytes
from components.core.secagg.prg import mask_stream
from components.core.secagg.shamir import combine_shares, split_secret


def seeded_entropy(seed: int) -> Callable[[int], bytes]:
    rng = np.random.default_rng(seed)
    return lambda n: rng.bytes(n)


def run_round(
    inputs: dict[str, np.ndarray],
    threshold: int,
    drop_before_sharing: Sequence[str] = (),
    drop_before_input: Sequence[str] = (),
    drop_before_unmasking: Sequence[str] = (),
    entropy: Callable[[int], bytes] | None = None,
    codec: FixedPoint | None = None,
) -> tuple[np.ndarray, list[str], list[MaskedInput]]:
    """One full round in memory; returns the server's result, its survivors and the masked inputs it received."""
    length = len(next(iter(inputs.values())))
    config = SecAggConfig(
        session="run-1/round-3", threshold=threshold, vector_length=length, **({"codec": codec} if codec else {})
    )
    extra = {} if entropy is None else {"entropy": entropy}
    clients = {party: SecAggClient(party, config, **extra) for party in inputs}
    server = SecAggServer(config)
    for client in clients.values():
        server.receive_keys(client.advertise_keys())
    roster = server.key_roster()
    for party, client in clients.items():
        if party not in drop_before_sharing:
            server.receive_shares(client.share_keys(roster))
    received = []
    for party, bundle in server.share_bundles().items():
        if party not in drop_before_input:
            masked = clients[party].masked_input(bundle, inputs[party])
            received.append(masked)
            server.receive_masked(masked)
    request = server.unmask_request()
    for party in request.survivors:
        if party not in drop_before_unmasking:
            server.receive_unmask(clients[party].unmask(request))
    return server.result(), server.survivors, received


# ---- fixed-point codec ----
def test_fixed_point_encodes_by_hand():
    codec = FixedPoint(fractional_bits=2, clip=8.0)  # steps of 0.25
    encoded = codec.encode(np.array([1.5, -1.0, 100.0]))
    assert encoded.dtype == np.uint64
    assert encoded.tolist() == [6, 2**64 - 4, 32]  # 1.5*4, two's complement of -4, clipped to 8*4
    np.testing.assert_array_equal(codec.decode(encoded), [1.5, -1.0, 8.0])


def test_fixed_point_sum_in_the_ring_decodes_to_the_real_sum():
    codec = FixedPoint(fractional_bits=2, clip=8.0)
    total = codec.encode(np.array([1.5, -3.0])) + codec.encode(np.array([-2.25, 1.0]))
    np.testing.assert_array_equal(codec.decode(total), [-0.75, -2.0])


def test_fixed_point_overflow_bound():
    codec = FixedPoint(fractional_bits=24, clip=2.0**15)
    assert codec.max_summands == 2**24 - 1  # floor((2^63 - 1) / 2^39)
    with pytest.raises(ValueError, match="below 2\\^63"):
        FixedPoint(fractional_bits=52, clip=2.0**11)


# ---- primitives ----
def test_mask_stream_is_deterministic_per_seed():
    a = mask_stream(bytes(32), 4)
    assert a.dtype == np.uint64 and a.shape == (4,)
    np.testing.assert_array_equal(a, mask_stream(bytes(32), 4))
    assert not np.array_equal(a, mask_stream(bytes(31) + b"\x01", 4))
    np.testing.assert_array_equal(mask_stream(bytes(32), 2), a[:2])  # a prefix of the same keystream
    with pytest.raises(ValueError, match="32 bytes"):
        mask_stream(bytes(16), 4)


def test_key_agreement_is_symmetric_and_bound_to_its_context():
    alice, bob = private_key_from_bytes(bytes([1]) * 32), private_key_from_bytes(bytes([2]) * 32)
    shared = agree(alice, public_key_bytes(bob), b"mask|s1")
    assert shared == agree(bob, public_key_bytes(alice), b"mask|s1")
    assert shared != agree(alice, public_key_bytes(bob), b"mask|s2")
    assert len(shared) == 32


def test_shamir_three_of_five_on_a_32_byte_secret():
    secret = bytes(range(32))
    shares = split_secret(secret, threshold=3, count=5)
    assert [index for index, _ in shares] == [1, 2, 3, 4, 5]
    assert combine_shares([shares[4], shares[0], shares[2]], threshold=3) == secret
    assert combine_shares(shares[1:4], threshold=3) == secret
    with pytest.raises(ValueError, match="need 3 shares"):
        combine_shares(shares[:2], threshold=3)


def test_shamir_with_too_few_shares_reveals_nothing_useful():
    secret = bytes(range(16))
    shares = split_secret(secret, threshold=3, count=5)
    assert combine_shares(shares[:2], threshold=2) != secret  # two points do not pin a degree-2 polynomial


# ---- the protocol ----
def test_three_parties_sum_by_hand():
    inputs = {"a": np.array([1.0, 2.0]), "b": np.array([10.0, -20.0]), "c": np.array([0.5, 0.25])}
    total, survivors, _ = run_round(inputs, threshold=2)
    assert survivors == ["a", "b", "c"]
    np.testing.assert_allclose(total, [11.5, -17.75], atol=1e-6)


def test_party_dropping_after_sharing_is_left_out_of_the_sum():
    inputs = {"a": np.array([1.0]), "b": np.array([2.0]), "c": np.array([4.0]), "d": np.array([8.0])}
    total, survivors, _ = run_round(inputs, threshold=3, drop_before_input=["c"])
    assert survivors == ["a", "b", "d"]
    np.testing.assert_allclose(total, [11.0], atol=1e-6)


def test_dropouts_at_every_step_still_give_the_survivors_sum():
    inputs = {p: np.array([float(i)]) for i, p in enumerate("abcdef", start=1)}
    total, survivors, _ = run_round(
        inputs, threshold=3, drop_before_sharing=["a"], drop_before_input=["b"], drop_before_unmasking=["c"]
    )
    assert survivors == ["c", "d", "e", "f"]  # c's input arrived, so it is in the sum even though it left later
    np.testing.assert_allclose(total, [3.0 + 4.0 + 5.0 + 6.0], atol=1e-6)


def test_too_few_parties_is_a_quorum_error():
    inputs = {"a": np.array([1.0]), "b": np.array([2.0]), "c": np.array([4.0])}
    with pytest.raises(QuorumNotReached, match="needs 3"):
        run_round(inputs, threshold=3, drop_before_input=["c"])


def test_steps_out_of_order_are_refused():
    config = SecAggConfig(session="s", threshold=2, vector_length=1)
    client = SecAggClient("a", config)
    with pytest.raises(ProtocolError, match="not allowed during advertise keys"):
        client.unmask(request=None)  # type: ignore[arg-type]
    server = SecAggServer(config)
    with pytest.raises(ProtocolError, match="not allowed during advertise keys"):
        server.result()


def test_a_client_never_reveals_both_shares_of_one_party():
    inputs = {p: np.array([1.0]) for p in "abcd"}
    config = SecAggConfig(session="s", threshold=2, vector_length=1)
    clients = {p: SecAggClient(p, config) for p in inputs}
    server = SecAggServer(config)
    for client in clients.values():
        server.receive_keys(client.advertise_keys())
    roster = server.key_roster()
    for client in clients.values():
        server.receive_shares(client.share_keys(roster))
    for party, bundle in server.share_bundles().items():
        masked = clients[party].masked_input(bundle, inputs[party])
        if party != "d":
            server.receive_masked(masked)
    reply = clients["a"].unmask(server.unmask_request())
    assert set(reply.self_mask_shares) == {"a", "b", "c"} and set(reply.mask_key_shares) == {"d"}
    with pytest.raises(ProtocolError, match="wrong parties"):
        server.receive_unmask(UnmaskShares(party="b", self_mask_shares={"d": bytes(32)}, mask_key_shares={}))


def test_messages_round_trip_through_json():
    config = SecAggConfig(session="s", threshold=2, vector_length=1)
    clients = [SecAggClient(p, config) for p in "ab"]
    roster = KeyRoster(keys={c.party: c.advertise_keys().keys for c in clients})
    as_json = roster.model_dump(mode="json")
    assert isinstance(as_json["keys"]["a"]["mask_key"], str)  # base64 text on the wire
    assert KeyRoster.model_validate(as_json) == roster
    assert KeyRoster.model_validate_json(roster.model_dump_json()) == roster


party_values = st.floats(min_value=-1000, max_value=1000, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n_parties=st.integers(2, 7), length=st.integers(1, 6))
def test_unmasked_sum_equals_plain_sum(data, n_parties, length):
    inputs = {
        f"p{i}": np.array(data.draw(st.lists(party_values, min_size=length, max_size=length))) for i in range(n_parties)
    }
    threshold = max(2, n_parties // 2 + 1)
    total, survivors, _ = run_round(inputs, threshold=threshold)
    assert len(survivors) == n_parties
    np.testing.assert_allclose(total, np.sum(list(inputs.values()), axis=0), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n_parties=st.integers(3, 7), length=st.integers(1, 6))
def test_unmasked_sum_equals_plain_sum_with_one_dropout(data, n_parties, length):
    inputs = {
        f"p{i}": np.array(data.draw(st.lists(party_values, min_size=length, max_size=length))) for i in range(n_parties)
    }
    dropped = f"p{data.draw(st.integers(0, n_parties - 1))}"
    threshold = max(2, n_parties // 2 + 1)
    total, survivors, _ = run_round(inputs, threshold=threshold, drop_before_input=[dropped])
    assert dropped not in survivors and len(survivors) == n_parties - 1
    expected = np.sum([x for party, x in inputs.items() if party != dropped], axis=0)
    np.testing.assert_allclose(total, expected, atol=1e-5)


def test_what_the_coordinator_receives_is_independent_of_a_partys_update():
    # Prepare: 400 rounds of 3 parties; party "a" holds a widely varying update (values in ±100).
    entropy = seeded_entropy(2024)
    data = np.random.default_rng(7)
    updates, received, plain = [], [], []
    codec = FixedPoint()
    for _ in range(400):
        inputs = {p: data.normal(0.0, 30.0, size=8) for p in "abc"}
        # Execute: the coordinator's view of party a is its MaskedInput message.
        _, _, messages = run_round(inputs, threshold=2, entropy=entropy)
        masked = next(m for m in messages if m.party == "a")
        updates.append(inputs["a"])
        received.append(np.frombuffer(masked.masked, dtype="<u8") / 2.0**64)
        plain.append(codec.encode(inputs["a"]) / 2.0**64)
    x, seen, unmasked = np.concatenate(updates), np.concatenate(received), np.concatenate(plain)
    # Assert: no linear dependence (|r| well under 4 standard errors), none in a 4x4 contingency table,
    # and the received elements are uniform on the ring. The same statistic on the unmasked encoding
    # shows the test can tell dependence when it is there.
    bound = 4 / np.sqrt(len(x))
    assert abs(np.corrcoef(x, unmasked)[0, 1]) > 10 * bound
    assert abs(np.corrcoef(x, seen)[0, 1]) < bound
    table = np.histogram2d(x, seen, bins=[np.quantile(x, [0, 0.25, 0.5, 0.75, 1]), np.linspace(0, 1, 5)])[0]
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert stats.kstest(seen, "uniform").pvalue > 0.001
