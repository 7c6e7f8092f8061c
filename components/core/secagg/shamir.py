"""t-of-n Shamir secret sharing of 16- or 32-byte seeds, by pycryptodome (GF(2^128), 16-byte blocks).

A 32-byte secret is shared as two independent 16-byte blocks; a party's share is its two block
shares concatenated, under one index (1..n).
"""

from __future__ import annotations

from collections.abc import Sequence

from Crypto.Protocol.SecretSharing import Shamir

BLOCK_BYTES = 16


def split_secret(secret: bytes, threshold: int, count: int) -> list[tuple[int, bytes]]:
    """``count`` shares of ``secret``, any ``threshold`` of which recover it; share ``i`` has index ``i + 1``."""
    if len(secret) not in (16, 32):
        raise ValueError(f"secret must have 16 or 32 bytes, got {len(secret)}")
    if not 1 <= threshold <= count:
        raise ValueError(f"need 1 <= threshold <= count, got threshold={threshold}, count={count}")
    blocks = [secret[i : i + BLOCK_BYTES] for i in range(0, len(secret), BLOCK_BYTES)]
    block_shares = [Shamir.split(threshold, count, block) for block in blocks]
    return [(index, b"".join(shares[index - 1][1] for shares in block_shares)) for index in range(1, count + 1)]


def combine_shares(shares: Sequence[tuple[int, bytes]], threshold: int) -> bytes:
    """The secret from at least ``threshold`` shares (exactly ``threshold`` of them are used)."""
    if len(shares) < threshold:
        raise ValueError(f"need {threshold} shares to recover the secret, got {len(shares)}")
    chosen = list(shares)[:threshold]
    length = len(chosen[0][1])
    if length not in (16, 32) or any(len(share) != length for _, share in chosen):
        raise ValueError("shares must all have 16 or all have 32 bytes")
    blocks = [
        Shamir.combine([(index, share[offset : offset + BLOCK_BYTES]) for index, share in chosen])
        for offset in range(0, length, BLOCK_BYTES)
    ]
    return b"".join(blocks)
