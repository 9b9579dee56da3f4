"""Tensors as raw buffers (aiaas.placement.wire): every served dtype round-trips; a bad header is refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from aiaas.placement import wire
from aiaas.placement.channel import Segment


@pytest.mark.parametrize(
    "dtype",
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"],
)
def test_numeric_tensors_round_trip_through_shared_memory(dtype: str) -> None:
    arr = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    seg = Segment(1 << 16)
    try:
        plan, size = wire.layout({"a": arr, "b": arr[:, :1]})
        header = wire.write(plan, seg.view)
        out = wire.read(header, seg.view, copy=True)
        assert out["a"].dtype == arr.dtype and np.array_equal(out["a"], arr)
        assert np.array_equal(out["b"], arr[:, :1]) and size <= seg.size
    finally:
        seg.close()


def test_bytes_tensors_and_empty_batches_round_trip() -> None:
    text = np.array([[b"ab", b""], ["héllo".encode(), b"\x00\xff"]], dtype=object)
    empty = np.zeros((0, 5), dtype=np.float32)
    out = wire.unpack(*wire.pack({"t": text, "e": empty}))
    assert out["t"].dtype == object and out["t"].tolist() == text.tolist()
    assert out["e"].shape == (0, 5)


def test_object_tensors_and_unknown_dtypes_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot cross"):
        wire.layout({"c": np.array([1 + 2j])})
    header, data = wire.pack({"x": np.ones((2, 2), dtype=np.float32)})
    with pytest.raises(ValueError, match="outside the shared buffer"):
        wire.unpack(header, data[:8])
    bad = bytearray(header)
    bad[-16:] = struct.pack("<2q", 3, 3)  # shape 3x3 does not match 16 bytes
    with pytest.raises(ValueError, match="do not match"):
        wire.unpack(bytes(bad), data)


def test_errors_from_a_replica_keep_aiaas_classes_only() -> None:
    from aiaas.errors import InvalidInput, ServiceUnavailable
    from aiaas.placement.base import RemoteError, decode_error, encode_error

    back = decode_error(encode_error(InvalidInput("bad x", param="x")))
    assert type(back) is InvalidInput and back.message == "bad x" and back.param == "x"
    assert type(decode_error(encode_error(ServiceUnavailable("busy")))) is ServiceUnavailable
    other = decode_error(encode_error(ValueError("nope")))
    assert type(other) is RemoteError and str(other) == "ValueError: nope"
    # a peer can name only classes of aiaas.errors: anything else is a RemoteError with the message
    assert type(decode_error(b'{"class": "Any", "message": "m"}')) is RemoteError
    assert type(decode_error(b"not json")) is RemoteError
