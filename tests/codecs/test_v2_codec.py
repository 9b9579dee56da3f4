"""KServe V2 codec: JSON and binary-extension round trips for every datatype, and the errors clients see.

tritonclient builds request bodies and parses response bodies here, so the binary layout is checked against an
independent implementation of the extension rather than against our own encoder.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton

from aiaas.codecs.v2 import decode_request, encode_response
from aiaas.errors import InvalidInput

# One sample per V2 datatype, with extremes where the type has them (2-D so nested data is exercised).
SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "INT8": np.array([[-128, 127, 0], [1, -1, 5]], dtype=np.int8),
    "INT16": np.array([[-32768, 32767, 0], [7, -7, 300]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1, 0], [1, 2, 3]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1, 0], [10**12, -(10**12), 42]], dtype=np.int64),
    "UINT8": np.array([[0, 255, 1], [2, 3, 4]], dtype=np.uint8),
    "UINT16": np.array([[0, 65535, 1], [2, 3, 4]], dtype=np.uint16),
    "UINT32": np.array([[0, 2**32 - 1, 1], [2, 3, 4]], dtype=np.uint32),
    "UINT64": np.array([[0, 2**64 - 1, 1], [2, 3, 2**40]], dtype=np.uint64),
    "FP16": np.array([[0.5, -2.0, 65504.0], [0.0, 1.5, -0.25]], dtype=np.float16),
    "FP32": np.array([[0.1, -3.5, 1e30], [0.0, 2.25, -1e-30]], dtype=np.float32),
    "FP64": np.array([[0.1, -3.5, 1e300], [0.0, 2.25, -1e-300]], dtype=np.float64),
    "BYTES": np.array([[b"a", b"", "h\u00e9llo".encode()], [b"x" * 40, b"\x00zero", b"z"]], dtype=object),
}
DATATYPES = list(SAMPLES)


def _json_data(arr: np.ndarray, nested: bool) -> Any:
    if arr.dtype == object:
        flat = [v.decode("utf-8") for v in arr.reshape(-1)]
        return np.array(flat, dtype=object).reshape(arr.shape).tolist() if nested else flat
    return arr.tolist() if nested else arr.reshape(-1).tolist()


def _json_request(inputs: list[dict[str, Any]], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype == object:
        assert got.dtype == object
        assert [bytes(v) for v in got.reshape(-1)] == list(want.reshape(-1))
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _triton_input(name: str, arr: np.ndarray, binary: bool) -> triton.InferInput:
    inp = triton.InferInput(name, list(arr.shape), triton_datatype(arr))
    inp.set_data_from_numpy(arr, binary_data=binary)
    return inp


def triton_datatype(arr: np.ndarray) -> str:
    return (
        "BYTES"
        if arr.dtype == object
        else {
            "bool": "BOOL",
            "float16": "FP16",
            "float32": "FP32",
            "float64": "FP64",
        }.get(arr.dtype.name, arr.dtype.name.upper())
    )


# -- JSON round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_json_round_trip_every_datatype(datatype: str, nested: bool) -> None:
    arr = SAMPLES[datatype]
    body = _json_request(
        [{"name": "t", "datatype": datatype, "shape": list(arr.shape), "data": _json_data(arr, nested)}]
    )
    req = decode_request(body)
    assert req.datatypes == {"t": datatype}
    _assert_same(req.inputs["t"], arr)

    out, header_len = encode_response("m", "1", "rid", {"t": req.inputs["t"]})
    assert header_len is None
    doc = orjson.loads(out)
    assert doc["model_name"] == "m" and doc["model_version"] == "1" and doc["id"] == "rid"
    (entry,) = doc["outputs"]
    assert entry["datatype"] == datatype
    assert entry["shape"] == list(arr.shape)
    assert "parameters" not in entry  # plain JSON data needs no encoding hint
    # the response entry is itself a valid request input: decoding it gives the original tensor back
    again = decode_request(_json_request([entry]))
    _assert_same(again.inputs["t"], arr)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_binary_request_every_datatype_matches_tritonclient(datatype: str) -> None:
    arr = SAMPLES[datatype]
    body, json_size = triton.InferenceServerClient.generate_request_body([_triton_input("t", arr, binary=True)])
    assert json_size is not None
    req = decode_request(body, json_size)
    _assert_same(req.inputs["t"], arr)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_binary_response_every_datatype_parsed_by_tritonclient(datatype: str) -> None:
    arr = SAMPLES[datatype]
    body, header_len = encode_response("m", "3", None, {"t": arr}, binary={"t"})
    assert header_len is not None and header_len < len(body)
    head = orjson.loads(body[:header_len])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == len(body) - header_len
    result = triton.InferenceServerClient.parse_response_body(body, header_length=header_len)
    _assert_same(result.as_numpy("t"), arr)


def test_binary_bytes_elements_are_length_prefixed() -> None:
    arr = np.array([b"ab", b"", b"xyz"], dtype=object)
    body, header_len = encode_response("m", "1", None, {"s": arr}, binary={"s"})
    assert header_len is not None
    assert body[header_len:] == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 3) + b"xyz"


def test_mixed_json_and_binary_inputs() -> None:
    a = SAMPLES["FP32"]
    b = SAMPLES["BYTES"]
    c = SAMPLES["INT64"]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [_triton_input("a", a, True), _triton_input("j", c, False), _triton_input("b", b, True)],
        request_id="r-7",
        parameters={"temperature": 2},
    )
    req = decode_request(body, json_size)
    assert list(req.inputs) == ["a", "j", "b"]
    _assert_same(req.inputs["a"], a)
    _assert_same(req.inputs["j"], c)
    _assert_same(req.inputs["b"], b)
    assert req.id == "r-7"
    assert req.parameters["temperature"] == 2
    assert req.binary_output_default is True  # tritonclient asks for binary outputs when it names none


def test_requested_outputs_and_binary_data_output() -> None:
    outputs = [triton.InferRequestedOutput("y", binary_data=True), triton.InferRequestedOutput("z", binary_data=False)]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [_triton_input("x", SAMPLES["FP32"], False)], outputs=outputs
    )
    req = decode_request(body, json_size)
    assert req.outputs is not None
    assert [(o.name, o.binary) for o in req.outputs] == [("y", True), ("z", False)]
    assert req.binary_output_default is False

    plain = decode_request(_json_request([_entry("x", SAMPLES["FP32"])], parameters={"binary_data_output": True}))
    assert plain.outputs is None  # no list: every output
    assert plain.binary_output_default is True


def test_response_mixes_binary_and_json_outputs() -> None:
    y, z = SAMPLES["FP64"], SAMPLES["INT8"]
    body, header_len = encode_response("m", "1", None, {"y": y, "z": z}, binary={"y"})
    assert header_len is not None
    head = orjson.loads(body[:header_len])
    by_name = {o["name"]: o for o in head["outputs"]}
    assert "data" not in by_name["y"] and by_name["y"]["parameters"]["binary_data_size"] == y.nbytes
    assert by_name["z"]["data"] == z.reshape(-1).tolist()
    result = triton.InferenceServerClient.parse_response_body(body, header_length=header_len)
    _assert_same(result.as_numpy("y"), y)
    _assert_same(result.as_numpy("z"), z)


def test_non_utf8_bytes_output_in_json_is_base64_with_parameter() -> None:
    raw = [b"\xff\xfe", b"ok"]
    body, header_len = encode_response("m", "1", None, {"blob": np.array(raw, dtype=object)})
    assert header_len is None
    (entry,) = orjson.loads(body)["outputs"]
    assert entry["parameters"] == {"content_encoding": "base64"}
    assert [base64.b64decode(v) for v in entry["data"]] == raw


def test_str_outputs_from_runtimes_encode_as_bytes() -> None:
    """onnxruntime returns string tensors as object arrays of str, numpy users may return '<U' arrays."""
    for arr in (np.array(["a", "b\u00e9"], dtype=object), np.array(["a", "b\u00e9"])):
        (entry,) = orjson.loads(encode_response("m", "1", None, {"s": arr})[0])["outputs"]
        assert entry["datatype"] == "BYTES" and entry["data"] == ["a", "b\u00e9"]


def _entry(name: str, arr: np.ndarray) -> dict[str, Any]:
    return {"name": name, "datatype": triton_datatype(arr), "shape": list(arr.shape), "data": _json_data(arr, False)}


# -- errors ---------------------------------------------------------------------------------------
def _error(body: bytes, header_length: int | None = None) -> str:
    with pytest.raises(InvalidInput) as info:
        decode_request(body, header_length)
    assert info.value.status_code == 400
    return info.value.message


def _binary_body(inputs: list[dict[str, Any]], blobs: bytes) -> tuple[bytes, int]:
    head = orjson.dumps({"inputs": inputs})
    return head + blobs, len(head)


@pytest.mark.parametrize(
    "inp",
    [
        {"name": "pixels", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3]},  # too few
        {"name": "pixels", "datatype": "FP32", "shape": [1], "data": [1, 2]},  # too many
        {"name": "pixels", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3]]},  # ragged
        {"name": "pixels", "datatype": "BYTES", "shape": [3], "data": ["a"]},
        {"name": "pixels", "datatype": "BYTES", "shape": [1], "data": [5]},
        {"name": "pixels", "datatype": "BOOL", "shape": [2], "data": [1, 0]},
        {"name": "pixels", "datatype": "INT8", "shape": [1], "data": [300]},  # out of range
        {"name": "pixels", "datatype": "UINT8", "shape": [1], "data": [-1]},
        {"name": "pixels", "datatype": "FP32", "shape": [1], "data": ["nope"]},
    ],
    ids=[
        "too-few",
        "too-many",
        "ragged",
        "bytes-count",
        "bytes-not-str",
        "bool-ints",
        "int8-range",
        "uint-neg",
        "str-num",
    ],
)
def test_bad_data_names_the_tensor(inp: dict[str, Any]) -> None:
    assert "'pixels'" in _error(_json_request([inp]))


@pytest.mark.parametrize("shape", [[-1, 2], "2x2", [2.0, 2], [True], None, [2**40, 2**40]])
def test_bad_shape_names_the_tensor(shape: Any) -> None:
    msg = _error(_json_request([{"name": "pixels", "datatype": "FP32", "shape": shape, "data": [1, 2, 3, 4]}]))
    assert "'pixels'" in msg and "shape" in msg


def test_unknown_datatype_names_the_tensor() -> None:
    msg = _error(_json_request([{"name": "pixels", "datatype": "FP128", "shape": [1], "data": [1]}]))
    assert "'pixels'" in msg and "FP128" in msg


def test_missing_datatype_and_data() -> None:
    assert "'pixels'" in _error(_json_request([{"name": "pixels", "shape": [1], "data": [1]}]))
    assert "'pixels'" in _error(_json_request([{"name": "pixels", "datatype": "FP32", "shape": [1]}]))


def test_duplicate_input_names() -> None:
    x = {"name": "pixels", "datatype": "FP32", "shape": [1], "data": [1]}
    msg = _error(_json_request([x, x]))
    assert "'pixels'" in msg and "twice" in msg


@pytest.mark.parametrize("body", [b"[1, 2]", b'"inputs"', b"42", b"null"])
def test_non_object_body(body: bytes) -> None:
    assert "JSON object" in _error(body)


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"inputs": []}', b'{"inputs": {}}', b'{"inputs": [1]}'])
def test_malformed_requests(body: bytes) -> None:
    _error(body)


def test_truncated_binary_numeric_tensor() -> None:
    arr = np.arange(4, dtype=np.float32)
    body, n = _binary_body(
        [{"name": "pixels", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 12}}],
        arr.tobytes()[:12],
    )
    msg = _error(body, n)
    assert "'pixels'" in msg and "16" in msg


def test_binary_data_size_past_the_body() -> None:
    body, n = _binary_body(
        [{"name": "pixels", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}}], b"\0" * 8
    )
    assert "'pixels'" in _error(body, n)


@pytest.mark.parametrize(
    "blob",
    [
        struct.pack("<I", 5) + b"ab",  # element runs past the end
        struct.pack("<I", 1) + b"a" + b"\x01\x00",  # half a length prefix
        struct.pack("<I", 1) + b"a",  # one element where the shape needs two
        (struct.pack("<I", 1) + b"a") * 3,  # three where the shape needs two
    ],
    ids=["element-past-end", "half-length", "too-few", "too-many"],
)
def test_truncated_or_overlong_binary_bytes(blob: bytes) -> None:
    body, n = _binary_body(
        [{"name": "words", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(blob)}}], blob
    )
    assert "'words'" in _error(body, n)


@pytest.mark.parametrize("delta", [1, 1000])
def test_header_length_past_the_body(delta: int) -> None:
    body = _json_request([{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [1]}])
    msg = _error(body, len(body) + delta)
    assert "Inference-Header-Content-Length" in msg


def test_negative_header_length() -> None:
    assert "Inference-Header-Content-Length" in _error(b"{}", -1)


def test_trailing_bytes_after_binary_inputs() -> None:
    arr = np.arange(2, dtype=np.int32)
    body, n = _binary_body(
        [{"name": "pixels", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": 8}}],
        arr.tobytes() + b"junk",
    )
    msg = _error(body, n)
    assert "4 bytes" in msg and "'pixels'" in msg


def test_trailing_bytes_without_binary_inputs() -> None:
    body = _json_request([{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [1]}])
    assert "bytes" in _error(body + b"xyz", len(body))


def test_binary_data_size_without_header_length() -> None:
    body = _json_request([{"name": "pixels", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}])
    msg = _error(body)
    assert "'pixels'" in msg and "Inference-Header-Content-Length" in msg


def test_bad_binary_data_size_values() -> None:
    for size in (-4, "4", 4.0):
        body, n = _binary_body(
            [{"name": "pixels", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": size}}], b"\0" * 4
        )
        assert "'pixels'" in _error(body, n)


@pytest.mark.parametrize(
    ("datatype", "data", "needle"),
    [
        ("INT32", [1.5, 2], "must be integers"),
        ("UINT8", [True, False], "must be integers"),
        ("BOOL", [1, 0], "must be true/false"),
        ("BOOL", [True, 0], "must be true/false"),
        ("FP32", [None, 1.0], "found null"),
        ("FP64", [1.0, None], "found null"),
    ],
)
def test_lossy_json_values_are_refused_not_truncated(datatype: str, data: list, needle: str) -> None:
    body = orjson.dumps({"inputs": [{"name": "t", "shape": [2], "datatype": datatype, "data": data}]})
    with pytest.raises(InvalidInput, match=needle) as info:
        decode_request(body)
    assert "'t'" in info.value.message


def test_boolean_binary_data_size_is_refused() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "t", "shape": [1], "datatype": "UINT8", "parameters": {"binary_data_size": True}}]}
    )
    with pytest.raises(InvalidInput, match="binary_data_size"):
        decode_request(body + b"\x01", len(body))
