"""An optional capture of every frame the agent sends, byte for byte, length-prefixed (``wire_log``).

For forensics and for tests that search what left for row values; the owner's readable, verifiable record
is the audit log (``party_agent.audit``)."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

_LENGTH = struct.Struct("<Q")


class WireCapture:
    """Appends messages as ``<frame count><length><bytes>...``; ``read`` yields them back."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def record(self, frames: Sequence[Any]) -> None:
        with self._lock, self.path.open("ab") as handle:
            handle.write(_LENGTH.pack(len(frames)))
            for frame in frames:
                data = memoryview(frame).cast("B")
                handle.write(_LENGTH.pack(len(data)))
                handle.write(data)

    @staticmethod
    def read(path: Path) -> Iterator[list[bytes]]:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (count,) = _LENGTH.unpack_from(data, offset)
            offset += _LENGTH.size
            frames = []
            for _ in range(count):
                (length,) = _LENGTH.unpack_from(data, offset)
                offset += _LENGTH.size
                frames.append(data[offset : offset + length])
                offset += length
            yield frames
