"""The wire protocol: typed, versioned envelopes plus raw tensor frames. No pickle."""

from components.core.protocol.codec import TensorFrames, decode, encode, frames_size
from components.core.protocol.messages import PROTOCOL_VERSION, Envelope, Kind, TensorSpec

__all__ = ["PROTOCOL_VERSION", "Envelope", "Kind", "TensorFrames", "TensorSpec", "decode", "encode", "frames_size"]
