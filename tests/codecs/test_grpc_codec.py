"""The gRPC tensor codec without a server: raw and typed inputs, the REST codec's checks applied to gRPC, and
raw outputs that tritonclient reads back."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc import InferResult
from tritonclient.grpc import service_pb2 as pb

from aiaas.codecs.grpc import decode_infer_request, encode_outputs, parameters, set_parameter
from aiaas.errors import InvalidInput


def _request(raw: bool = True) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="m", id="r")
    req.inputs.add(name="x", datatype="FP32", shape=[2, 2])
    req.inputs.add(name="s", datatype="BYTES", shape=[2])
    if raw:
        req.raw_input_contents.append(np.arange(4, dtype=np.float32).tobytes())
        req.raw_input_contents.append(b"\x01\x00\x00\x00a\x00\x00\x00\x00")
    else:
        req.inputs[0].contents.fp32_contents.extend([0, 1, 2, 3])
        req.inputs[1].contents.bytes_contents.extend([b"a", b""])
    set_parameter(req.parameters, "temperature", 0.5)
    set_parameter(req.parameters, "flag", True)
    req.outputs.add(name="y")
    return req


@pytest.mark.parametrize("raw", [True, False])
def test_decode_raw_and_typed_alike(raw: bool) -> None:
    d = decode_infer_request(_request(raw))
    assert d.id == "r" and d.datatypes == {"x": "FP32", "s": "BYTES"}
    np.testing.assert_array_equal(d.inputs["x"], np.arange(4, dtype=np.float32).reshape(2, 2))
    assert d.inputs["s"].tolist() == [b"a", b""]
    assert d.parameters == {"temperature": 0.5, "flag": True}
    assert d.outputs is not None and [o.name for o in d.outputs] == ["y"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.raw_input_contents.pop(), "2 inputs"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"\x00" * 12), "needs 16 bytes"),
        (lambda r: r.raw_input_contents.__setitem__(1, b"\x09\x00\x00\x00a\x01\x00\x00\x00b"), "runs past the end"),
        (lambda r: r.raw_input_contents.__setitem__(1, b"\x01\x00\x00\x00a"), "holds at most 1"),
        (lambda r: r.inputs[0].shape.__setitem__(0, -2), "negative dimension"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP8"), "unknown datatype"),
        (lambda r: setattr(r.inputs[1], "name", "x"), "appears twice"),
        (lambda r: r.inputs[0].contents.fp32_contents.append(1.0), "both contents and raw_input_contents"),
    ],
)
def test_decode_errors_name_the_problem(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    req = _request()
    mutate(req)
    with pytest.raises(InvalidInput, match=message):
        decode_infer_request(req)


def test_encode_is_raw_and_readable_by_tritonclient() -> None:
    outs = {
        "y": np.array([[1.5, -2.0]], np.float16),
        "t": np.array([b"x", b"yz"], dtype=object),
        "b": np.array([True, False]),
    }
    resp = pb.ModelInferResponse(model_name="m", model_version="1")
    encode_outputs(resp, outs)
    assert len(resp.raw_output_contents) == 3 and [o.datatype for o in resp.outputs] == ["FP16", "BYTES", "BOOL"]
    result = InferResult(resp)
    for name, arr in outs.items():
        assert result.as_numpy(name).tolist() == arr.tolist()
    set_parameter(resp.parameters, "finish_reason", "stop")
    assert parameters(resp.parameters) == {"finish_reason": "stop"}
