"""Encode messages to ZeroMQ frames and back: JSON envelope frame, then one raw frame per tensor.

Tensors travel as raw C-contiguous buffers described by the envelope's ``tensors`` header, so
encoding makes no copy of a contiguous array and decoding wraps the received buffer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from components.core.errors import ProtocolError
from components.core.params import Params
from components.core.protocol.messages import PROTOCOL_VERSION, Envelope, TensorSpec

Buffer = bytes | memoryview
MAX_ENVELOPE_BYTES = 1 << 20


class TensorFrames:
    """Tensors laid out for the wire once (their header entries and raw buffers), to go with many envelopes:
    the one model a round sends to every party is described and viewed once, not once per party."""

    __slots__ = ("buffers", "specs")

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        arrays = [np.ascontiguousarray(a) for a in tensors.values()]
        self.specs = [
            TensorSpec(name=name, dtype=str(a.dtype), shape=tuple(a.shape))
            for name, a in zip(tensors, arrays, strict=True)
        ]
        self.buffers: list[Buffer] = [memoryview(a).cast("B") for a in arrays]

    def __bool__(self) -> bool:
        return bool(self.specs)


def encode(envelope: Envelope, tensors: Mapping[str, np.ndarray] | TensorFrames | None = None) -> list[Buffer]:
    """Frames for ``envelope`` plus ``tensors``; the header lists every tensor's name, dtype and shape."""
    laid_out = tensors if isinstance(tensors, TensorFrames) else TensorFrames(tensors or {})
    header = envelope.model_copy(update={"tensors": laid_out.specs}) if laid_out.specs else envelope
    return [header.model_dump_json().encode(), *laid_out.buffers]


def _as_buffer(frame: Any) -> memoryview:
    """A read-only byte view of a zmq.Frame, bytes or memoryview."""
    buffer = frame.buffer if hasattr(frame, "buffer") else frame
    return memoryview(buffer).cast("B")


def frames_size(frames: Sequence[Any]) -> int:
    """Total bytes of a multipart message."""
    return sum(len(_as_buffer(f)) for f in frames)


def decode(frames: Sequence[Any], max_bytes: int | None = None) -> tuple[Envelope, Params]:
    """Parse frames into an envelope and its tensors; anything malformed raises ProtocolError."""
    if not frames:
        raise ProtocolError("empty message", code="framing")
    if max_bytes is not None and (size := frames_size(frames)) > max_bytes:
        raise ProtocolError(f"message of {size} bytes exceeds the limit of {max_bytes}", code="too_large")
    head = _as_buffer(frames[0])
    if len(head) > MAX_ENVELOPE_BYTES:
        raise ProtocolError("envelope frame too large", code="too_large")
    try:
        envelope = Envelope.model_validate_json(bytes(head))
    except ValidationError as error:
        raise ProtocolError(f"invalid envelope: {_first_error(error)}", code="envelope") from None
    if envelope.version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {envelope.version} not supported (this side speaks {PROTOCOL_VERSION})",
            code="version",
        )
    if len(frames) - 1 != len(envelope.tensors):
        raise ProtocolError(
            f"header lists {len(envelope.tensors)} tensors but {len(frames) - 1} frames follow",
            code="framing",
        )
    tensors: Params = {}
    for spec, frame in zip(envelope.tensors, frames[1:], strict=True):
        if spec.name in tensors:
            raise ProtocolError(f"tensor {spec.name!r} sent twice", code="tensor")
        buffer = _as_buffer(frame)
        dtype = np.dtype(spec.dtype)
        expected = math.prod(spec.shape) * dtype.itemsize  # Python integers: a hostile shape cannot overflow
        if len(buffer) != expected:
            raise ProtocolError(
                f"tensor {spec.name!r} has {len(buffer)} bytes, header says {expected}",
                code="tensor",
            )
        try:
            tensors[spec.name] = np.frombuffer(buffer, dtype=dtype).reshape(spec.shape)
        except (ValueError, OverflowError):  # an empty tensor with a dimension numpy cannot represent
            raise ProtocolError(f"tensor {spec.name!r} has an impossible shape {spec.shape}", code="tensor") from None
    return envelope, tensors


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "envelope"
    return f"{where}: {first.get('msg', 'invalid')}"
