"""One round of secure aggregation (Bonawitz et al. 2017, semi-honest variant) as pure state machines.

    client                                   server (relays, never sees an unmasked input)
    advertise_keys()  -- AdvertiseKeys -->   receive_keys()
                      <-- KeyRoster -----    key_roster()              U1: parties with keys
    share_keys()      -- EncryptedShares ->  receive_shares()
                      <-- ShareBundle ---    share_bundles()           U2: parties that shared
    masked_input(x)   -- MaskedInput --->    receive_masked()          (running sum of masked vectors)
                      <-- UnmaskRequest --   unmask_request()          U3: parties whose input arrived
    unmask()          -- UnmaskShares -->    receive_unmask()
                                             result() -> sum of the inputs of U3

Each party has two X25519 key pairs: a channel key (to encrypt the Shamir shares it sends through
the server to each other party) and a mask key (pairwise mask seeds). Its masked input is

    y_u = encode(x_u) + PRG(b_u) + sum_{v in U2, v != u} sign(u, v) * PRG(s_uv)     (mod 2^64)

with ``b_u`` a fresh self-mask seed, ``s_uv`` the seed both ``u`` and ``v`` derive from their mask
keys, and ``sign(u, v) = +1`` if ``u < v`` else ``-1``, so pairwise masks cancel in the sum. Both
``b_u`` and the mask private key are t-of-n secret-shared among U1. At unmasking, each responding
party reveals, for every survivor, its share of the survivor's ``b_u`` and, for every party that
dropped after sharing (U2 minus U3), its share of that party's mask key, never both for one
party. With ``threshold`` responses the server removes the self-masks of survivors and the masks
survivors share with dropped parties; what is left is the plain sum.

Messages are pydantic models; bytes fields serialise as base64 in JSON and are accepted raw or as
base64. ``entropy`` (default ``secrets.token_bytes``) is injectable only so tests can be reproducible.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from enum import Enum
from typing import Annotated

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.core.errors import ProtocolError, QuorumNotReached
from components.core.secagg.encoding import FixedPoint
from components.core.secagg.keys import KEY_BYTES, agree, private_key_bytes, private_key_from_bytes, public_key_bytes
from components.core.secagg.prg import SEED_BYTES, mask_stream
from components.core.secagg.shamir import combine_shares, split_secret

PartyName = Annotated[str, Field(min_length=1, max_length=64)]
KeyBytes = Annotated[bytes, Field(min_length=KEY_BYTES, max_length=KEY_BYTES)]
_NONCE_BYTES = 12
_SHARE_BYTES = 32


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")


class SecAggConfig(_Message):
    """What every participant of one round agrees on; ``session`` must be unique per run and round."""

    session: str = Field(min_length=1, max_length=200)
    threshold: int = Field(ge=2)
    vector_length: int = Field(ge=1)
    codec: FixedPoint = Field(default_factory=FixedPoint)


class PublicKeys(_Message):
    channel_key: KeyBytes
    mask_key: KeyBytes


class AdvertiseKeys(_Message):
    party: PartyName
    keys: PublicKeys


class KeyRoster(_Message):
    """U1: the public keys of every party that advertised in time."""

    keys: dict[PartyName, PublicKeys]

    @model_validator(mode="after")
    def _distinct_keys(self) -> KeyRoster:
        all_keys = [k.channel_key for k in self.keys.values()] + [k.mask_key for k in self.keys.values()]
        if len(set(all_keys)) != len(all_keys):
            raise ValueError("public keys in a roster must all be distinct")
        return self


class EncryptedShares(_Message):
    """A party's shares for each other member of U1, each encrypted for its recipient."""

    party: PartyName
    ciphertexts: dict[PartyName, bytes]


class ShareBundle(_Message):
    """The ciphertexts addressed to ``recipient``, by sender; the senders plus the recipient are U2."""

    recipient: PartyName
    ciphertexts: dict[PartyName, bytes]


class MaskedInput(_Message):
    """The masked vector as little-endian uint64 ring elements."""

    party: PartyName
    masked: bytes


class UnmaskRequest(_Message):
    """U3: the parties whose masked input the server holds."""

    survivors: list[PartyName]


class UnmaskShares(_Message):
    """Shares of survivors' self-mask seeds and of dropped parties' mask keys, by owner."""

    party: PartyName
    self_mask_shares: dict[PartyName, bytes]
    mask_key_shares: dict[PartyName, bytes]


class _Phase(Enum):
    KEYS = "advertise keys"
    SHARES = "share keys"
    MASKED = "masked input"
    UNMASK = "unmasking"
    DONE = "done"


def _context(purpose: str, session: str) -> bytes:
    return f"consortia-secagg/v1|{purpose}|{session}".encode()


def _share_aad(session: str, sender: str, recipient: str) -> bytes:
    return f"{session}|{sender}->{recipient}".encode()


def _shamir_indices(parties: list[str]) -> dict[str, int]:
    return {party: index for index, party in enumerate(sorted(parties), start=1)}


def _signed_pair_mask(seed: bytes, length: int, party: str, other: str) -> np.ndarray:
    stream = mask_stream(seed, length)
    return stream if party < other else np.uint64(0) - stream


def _require_phase(actual: _Phase, expected: _Phase, step: str) -> None:
    if actual is not expected:
        raise ProtocolError(f"secure aggregation: {step} is not allowed during {actual.value}", code="secagg_phase")


class SecAggClient:
    """A party's side of one round: call the four steps in order, each exactly once."""

    def __init__(self, party: str, config: SecAggConfig, entropy: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.party = party
        self.config = config
        self._entropy = entropy
        self._channel_key = private_key_from_bytes(entropy(KEY_BYTES))
        self._mask_key = private_key_from_bytes(entropy(KEY_BYTES))
        self._phase = _Phase.KEYS
        self._roster: dict[str, PublicKeys] = {}
        self._sharers: list[str] = []
        self._held: dict[str, tuple[bytes, bytes]] = {}  # owner -> (self-mask seed share, mask key share)
        self._self_mask_seed = b""

    def advertise_keys(self) -> AdvertiseKeys:
        _require_phase(self._phase, _Phase.KEYS, "advertising keys")
        self._phase = _Phase.SHARES
        keys = PublicKeys(channel_key=public_key_bytes(self._channel_key), mask_key=public_key_bytes(self._mask_key))
        return AdvertiseKeys(party=self.party, keys=keys)

    def share_keys(self, roster: KeyRoster) -> EncryptedShares:
        """Secret-share a fresh self-mask seed and the mask private key among U1."""
        _require_phase(self._phase, _Phase.SHARES, "sharing keys")
        own = roster.keys.get(self.party)
        if own is None or own.mask_key != public_key_bytes(self._mask_key):
            raise ProtocolError(f"the key roster does not hold {self.party}'s keys", code="secagg_roster")
        if len(roster.keys) < self.config.threshold:
            raise QuorumNotReached(f"{len(roster.keys)} parties advertised keys, need {self.config.threshold}")
        self._roster = dict(roster.keys)
        self._self_mask_seed = self._entropy(SEED_BYTES)
        indices = _shamir_indices(list(roster.keys))
        count = len(indices)
        seed_shares = dict(split_secret(self._self_mask_seed, self.config.threshold, count))
        key_shares = dict(split_secret(private_key_bytes(self._mask_key), self.config.threshold, count))
        ciphertexts: dict[str, bytes] = {}
        for recipient, index in indices.items():
            if recipient == self.party:
                self._held[self.party] = (seed_shares[index], key_shares[index])
                continue
            cipher = ChaCha20Poly1305(self._channel_cipher_key(recipient))
            nonce = self._entropy(_NONCE_BYTES)
            aad = _share_aad(self.config.session, self.party, recipient)
            ciphertexts[recipient] = nonce + cipher.encrypt(nonce, seed_shares[index] + key_shares[index], aad)
        self._phase = _Phase.MASKED
        return EncryptedShares(party=self.party, ciphertexts=ciphertexts)

    def masked_input(self, bundle: ShareBundle, vector: np.ndarray) -> MaskedInput:
        """Keep the shares addressed to this party, then mask ``vector`` with the self-mask and pairwise masks."""
        _require_phase(self._phase, _Phase.MASKED, "sending the masked input")
        values = np.asarray(vector, dtype=np.float64)
        if values.shape != (self.config.vector_length,):
            raise ValueError(f"input has shape {values.shape}, the round expects ({self.config.vector_length},)")
        if bundle.recipient != self.party or not set(bundle.ciphertexts) <= set(self._roster) - {self.party}:
            raise ProtocolError("share bundle is not for this party or names unknown senders", code="secagg_roster")
        self._sharers = sorted({*bundle.ciphertexts, self.party})
        if len(self._sharers) < self.config.threshold:
            raise QuorumNotReached(f"{len(self._sharers)} parties shared keys, need {self.config.threshold}")
        for sender, ciphertext in bundle.ciphertexts.items():
            self._held[sender] = self._decrypt_shares(sender, ciphertext)
        length = self.config.vector_length
        masked = self.config.codec.encode(values) + mask_stream(self._self_mask_seed, length)
        for other in self._sharers:
            if other != self.party:
                masked += _signed_pair_mask(self._pair_seed(other), length, self.party, other)
        self._phase = _Phase.UNMASK
        return MaskedInput(party=self.party, masked=masked.astype("<u8").tobytes())

    def unmask(self, request: UnmaskRequest) -> UnmaskShares:
        """Reveal self-mask shares of survivors and mask-key shares of parties that dropped after sharing."""
        _require_phase(self._phase, _Phase.UNMASK, "unmasking")
        survivors = set(request.survivors)
        if self.party not in survivors or not survivors <= set(self._sharers):
            raise ProtocolError("survivors must be parties that shared keys, this one included", code="secagg_roster")
        if len(survivors) < self.config.threshold:
            raise QuorumNotReached(f"{len(survivors)} masked inputs arrived, need {self.config.threshold}")
        self._phase = _Phase.DONE
        return UnmaskShares(
            party=self.party,
            self_mask_shares={owner: self._held[owner][0] for owner in sorted(survivors)},
            mask_key_shares={owner: self._held[owner][1] for owner in self._sharers if owner not in survivors},
        )

    def _channel_cipher_key(self, other: str) -> bytes:
        return agree(self._channel_key, self._roster[other].channel_key, _context("channel", self.config.session))

    def _pair_seed(self, other: str) -> bytes:
        return agree(self._mask_key, self._roster[other].mask_key, _context("mask", self.config.session))

    def _decrypt_shares(self, sender: str, ciphertext: bytes) -> tuple[bytes, bytes]:
        nonce, body = ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:]
        aad = _share_aad(self.config.session, sender, self.party)
        try:
            plain = ChaCha20Poly1305(self._channel_cipher_key(sender)).decrypt(nonce, body, aad)
        except InvalidTag:
            raise ProtocolError(f"shares from {sender} do not decrypt", code="secagg_shares") from None
        if len(plain) != 2 * _SHARE_BYTES:
            raise ProtocolError(f"shares from {sender} have the wrong length", code="secagg_shares")
        return plain[:_SHARE_BYTES], plain[_SHARE_BYTES:]


class SecAggServer:
    """The coordinator's side of one round: relays keys and shares, sums masked inputs, removes the masks."""

    def __init__(self, config: SecAggConfig) -> None:
        self.config = config
        self._phase = _Phase.KEYS
        self._keys: dict[str, PublicKeys] = {}
        self._shares: dict[str, dict[str, bytes]] = {}  # sender -> recipient -> ciphertext
        self._sharers: list[str] = []
        self._masked_sum = np.zeros(config.vector_length, dtype=np.uint64)
        self._survivors: list[str] = []
        self._received: set[str] = set()
        self._unmask: dict[str, UnmaskShares] = {}

    @property
    def survivors(self) -> list[str]:
        """U3: the parties whose inputs are in the sum (set by ``unmask_request``)."""
        return list(self._survivors)

    def receive_keys(self, message: AdvertiseKeys) -> None:
        _require_phase(self._phase, _Phase.KEYS, "receiving keys")
        if message.party in self._keys:
            raise ProtocolError(f"{message.party} advertised keys twice", code="secagg_duplicate")
        self._keys[message.party] = message.keys

    def key_roster(self) -> KeyRoster:
        """Close key collection: U1 is everyone who advertised."""
        _require_phase(self._phase, _Phase.KEYS, "publishing the key roster")
        self._require_quorum(len(self._keys), "advertised keys")
        if len(self._keys) > self.config.codec.max_summands:
            raise ProtocolError("more parties than the fixed-point codec can sum without overflow", code="secagg_codec")
        self._phase = _Phase.SHARES
        return KeyRoster(keys=self._keys)

    def receive_shares(self, message: EncryptedShares) -> None:
        _require_phase(self._phase, _Phase.SHARES, "receiving shares")
        if message.party not in self._keys or message.party in self._shares:
            raise ProtocolError(f"unexpected or repeated shares from {message.party}", code="secagg_roster")
        if set(message.ciphertexts) != set(self._keys) - {message.party}:
            raise ProtocolError(f"{message.party} must send one share to every other party", code="secagg_roster")
        self._shares[message.party] = dict(message.ciphertexts)

    def share_bundles(self) -> dict[str, ShareBundle]:
        """Close share collection: U2 is everyone who shared; each gets the ciphertexts of the others."""
        _require_phase(self._phase, _Phase.SHARES, "delivering shares")
        self._require_quorum(len(self._shares), "shared keys")
        self._sharers = sorted(self._shares)
        self._phase = _Phase.MASKED
        return {
            recipient: ShareBundle(
                recipient=recipient,
                ciphertexts={s: self._shares[s][recipient] for s in self._sharers if s != recipient},
            )
            for recipient in self._sharers
        }

    def receive_masked(self, message: MaskedInput) -> None:
        """Add a masked vector to the running sum; the vector itself is not kept."""
        _require_phase(self._phase, _Phase.MASKED, "receiving masked inputs")
        if message.party not in self._sharers or message.party in self._received:
            raise ProtocolError(f"unexpected or repeated masked input from {message.party}", code="secagg_roster")
        if len(message.masked) != 8 * self.config.vector_length:
            raise ProtocolError(f"masked input from {message.party} has the wrong length", code="secagg_length")
        self._masked_sum += np.frombuffer(message.masked, dtype="<u8").astype(np.uint64)
        self._received.add(message.party)

    def unmask_request(self) -> UnmaskRequest:
        """Close input collection: U3 is everyone whose masked input arrived."""
        _require_phase(self._phase, _Phase.MASKED, "requesting unmasking")
        self._require_quorum(len(self._received), "sent masked inputs")
        self._survivors = sorted(self._received)
        self._phase = _Phase.UNMASK
        return UnmaskRequest(survivors=self._survivors)

    def receive_unmask(self, message: UnmaskShares) -> None:
        _require_phase(self._phase, _Phase.UNMASK, "receiving unmasking shares")
        if message.party not in self._survivors or message.party in self._unmask:
            raise ProtocolError(f"unexpected or repeated unmasking shares from {message.party}", code="secagg_roster")
        dropped = set(self._sharers) - set(self._survivors)
        if set(message.self_mask_shares) != set(self._survivors) or set(message.mask_key_shares) != dropped:
            raise ProtocolError(f"{message.party} sent shares for the wrong parties", code="secagg_shares")
        self._unmask[message.party] = message

    def result(self) -> np.ndarray:
        """The sum of the survivors' input vectors (float64), once ``threshold`` parties have sent shares."""
        _require_phase(self._phase, _Phase.UNMASK, "computing the result")
        self._require_quorum(len(self._unmask), "sent unmasking shares")
        indices = _shamir_indices(list(self._keys))
        responders = sorted(self._unmask)
        length = self.config.vector_length
        total = self._masked_sum.copy()
        for owner in self._survivors:
            shares = [(indices[r], self._unmask[r].self_mask_shares[owner]) for r in responders]
            total -= mask_stream(combine_shares(shares, self.config.threshold), length)
        for owner in sorted(set(self._sharers) - set(self._survivors)):
            shares = [(indices[r], self._unmask[r].mask_key_shares[owner]) for r in responders]
            mask_key = private_key_from_bytes(combine_shares(shares, self.config.threshold))
            if public_key_bytes(mask_key) != self._keys[owner].mask_key:
                raise ProtocolError(f"recovered mask key of {owner} does not match its key", code="secagg_shares")
            for survivor in self._survivors:
                seed = agree(mask_key, self._keys[survivor].mask_key, _context("mask", self.config.session))
                total -= _signed_pair_mask(seed, length, survivor, owner)
        self._phase = _Phase.DONE
        return self.config.codec.decode(total)

    def _require_quorum(self, count: int, what: str) -> None:
        if count < self.config.threshold:
            raise QuorumNotReached(f"only {count} parties {what}, secure aggregation needs {self.config.threshold}")
