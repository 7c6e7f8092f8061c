"""Mask streams: a seed expanded into ring elements by the ChaCha20 keystream (``cryptography``)."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

SEED_BYTES = 32
_NONCE = bytes(16)  # every seed is derived for one session and one use, so a fixed nonce is safe


def mask_stream(seed: bytes, length: int) -> np.ndarray:
    """``length`` pseudorandom elements of Z_{2^64} (uint64), uniform and fully determined by ``seed``."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a mask seed has {SEED_BYTES} bytes, got {len(seed)}")
    encryptor = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    keystream = encryptor.update(bytes(8 * length))
    return np.frombuffer(keystream, dtype="<u8").astype(np.uint64)
