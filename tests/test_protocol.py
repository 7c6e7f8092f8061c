"""Message codec: round trips, and every kind of corruption raises a typed ProtocolError."""

import json

import numpy as np
import pytest

from components.core.errors import ProtocolError
from components.core.protocol import Envelope, Kind, decode, encode
from components.core.protocol.bodies import TrainRequest, parse_body


def _update() -> tuple[Envelope, dict[str, np.ndarray]]:
    envelope = Envelope(kind=Kind.UPDATE, run_id="r1", round=3, sender="alpha", body={"num_examples": 4})
    tensors = {
        "w": np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32),
        "b": np.array([5, 6], dtype=np.int64),
    }
    return envelope, tensors


def test_round_trip_keeps_envelope_and_tensors():
    envelope, tensors = _update()
    decoded, out = decode(encode(envelope, tensors))
    assert decoded.kind is Kind.UPDATE and decoded.round == 3 and decoded.sender == "alpha"
    assert decoded.message_id == envelope.message_id
    assert list(out) == ["w", "b"]
    np.testing.assert_array_equal(out["w"], tensors["w"])
    assert out["b"].dtype == np.int64 and out["b"].tolist() == [5, 6]


def test_encode_makes_no_copy_of_contiguous_tensors():
    envelope, tensors = _update()
    frames = encode(envelope, tensors)
    tensors["w"][0, 0] = 42.0
    assert np.frombuffer(frames[1], dtype=np.float32)[0] == 42.0


def test_truncated_tensor_frame_raises():
    envelope, tensors = _update()
    frames = [bytes(f) for f in encode(envelope, tensors)]
    frames[1] = frames[1][:-1]
    with pytest.raises(ProtocolError, match="bytes, header says") as caught:
        decode(frames)
    assert caught.value.code == "tensor"


def test_missing_frame_raises():
    envelope, tensors = _update()
    frames = encode(envelope, tensors)
    with pytest.raises(ProtocolError, match="2 tensors but 1 frames"):
        decode(frames[:2])


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"version": 99}, "version"),
        ({"kind": "exec_shell"}, "envelope"),
        ({"round": -1}, "envelope"),
        ({"sender": "../etc"}, "envelope"),
        ({"unexpected": 1}, "envelope"),
    ],
)
def test_bad_envelope_fields_raise(change, code):
    envelope, _ = _update()
    header = json.loads(encode(envelope)[0])
    header.update(change)
    with pytest.raises(ProtocolError) as caught:
        decode([json.dumps(header).encode()])
    assert caught.value.code == code


def test_garbage_and_pickle_bytes_are_refused():
    pickled = b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94."
    for frame in (b"", b"\xff\xfe", pickled):
        with pytest.raises(ProtocolError):
            decode([frame])


def test_object_dtype_is_refused():
    envelope, _ = _update()
    header = json.loads(encode(envelope)[0])
    header["tensors"] = [{"name": "w", "dtype": "object", "shape": [1]}]
    with pytest.raises(ProtocolError, match="dtype"):
        decode([json.dumps(header).encode(), b"\x00" * 8])


def test_hostile_shape_cannot_overflow_the_size_check():
    envelope, _ = _update()
    header = json.loads(encode(envelope)[0])
    header["tensors"] = [{"name": "w", "dtype": "float64", "shape": [2**40, 2**40, 2**40, 2**40]}]
    with pytest.raises(ProtocolError) as caught:
        decode([json.dumps(header).encode(), b""])
    assert caught.value.code == "tensor"


def test_size_limit():
    envelope, tensors = _update()
    with pytest.raises(ProtocolError) as caught:
        decode(encode(envelope, tensors), max_bytes=64)
    assert caught.value.code == "too_large"


def test_body_validation_is_typed():
    with pytest.raises(ProtocolError, match="TrainRequest"):
        parse_body(TrainRequest, {"model": {"n_features": -1}})
