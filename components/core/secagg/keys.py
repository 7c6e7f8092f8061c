"""X25519 key pairs and HKDF-derived pairwise secrets for secure aggregation (the paper's KA scheme)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32


def private_key_from_bytes(raw: bytes) -> X25519PrivateKey:
    """A private key from 32 bytes (fresh random bytes make a fresh key)."""
    return X25519PrivateKey.from_private_bytes(raw)


def private_key_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes_raw()


def public_key_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def agree(key: X25519PrivateKey, peer_public: bytes, context: bytes) -> bytes:
    """32 bytes both ends of a pair derive alike: HKDF-SHA256 over the X25519 shared secret.

    ``context`` binds the secret to its purpose and session; it must not depend on which end computes it.
    """
    shared = key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=context).derive(shared)
