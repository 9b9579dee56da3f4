"""KServe V2 inference requests and responses <-> numpy, including the binary tensor extension.

Hot path: requests are parsed with orjson straight from bytes (no pydantic models per request) and responses
are written as bytes; pydantic models in ``aiaas.types.v2`` document the same shapes for OpenAPI.

Binary extension (Triton): the body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by
the raw tensors, in input order, of the inputs whose ``parameters.binary_data_size`` is set. BYTES elements
are each a 4-byte little-endian length followed by the bytes.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from aiaas.codecs.datatypes import numpy_dtype, v2_datatype
from aiaas.errors import InvalidInput, clip

MAX_ELEMENTS = 1 << 26  # default per-tensor element bound (Settings.max_tensor_elements)


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DecodedRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]  # input name -> datatype the client declared
    parameters: dict[str, Any]
    outputs: list[RequestedOutput] | None  # None: all outputs
    binary_output_default: bool  # request parameter binary_data_output


MAX_DIMS = 32  # dimensions of one tensor
MAX_NAME = 256  # characters of a tensor name


def _shape(name: str, raw: Any, max_elements: int) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        raise InvalidInput(f"input {name!r}: 'shape' must be a list of integers, got {str(raw)[:80]}")
    if len(raw) > MAX_DIMS:
        raise InvalidInput(f"input {name!r}: shape has {len(raw)} dimensions; at most {MAX_DIMS} are allowed")
    count = 1
    for d in raw:
        if d < 0:
            raise InvalidInput(f"input {name!r}: shape {str(raw)[:80]} has a negative dimension")
        count *= d
        if count > max_elements:
            raise InvalidInput(
                f"input {name!r}: shape {str(raw)[:80]} holds more than the {max_elements} elements a tensor may have"
            )
    return tuple(raw)


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _flatten(data: Any) -> list[Any]:
    """Nested lists in row-major order, depth-bounded (deeper than any tensor is a client error, not a crash)."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack: list[tuple[list[Any], int]] = [(data, 0)]
    while stack:
        items, i = stack.pop()
        while i < len(items):
            item = items[i]
            i += 1
            if isinstance(item, list):
                stack.append((items, i))
                if len(stack) > MAX_DIMS:
                    raise InvalidInput(f"'data' is nested deeper than the {MAX_DIMS} dimensions a tensor may have")
                items, i = item, 0
            else:
                out.append(item)
    return out


def _bytes_from_json(name: str, data: Any, count: int) -> np.ndarray:
    flat = _flatten(data)
    if len(flat) != count:
        raise InvalidInput(f"input {name!r}: shape needs {count} elements, 'data' has {len(flat)}")
    arr = np.empty(count, dtype=object)
    for i, v in enumerate(flat):
        if isinstance(v, str):
            arr[i] = v.encode("utf-8")
        elif isinstance(v, (bytes, bytearray)):
            arr[i] = bytes(v)
        else:
            raise InvalidInput(f"input {name!r}: BYTES data must be strings, element {i} is {type(v).__name__}")
    return arr


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    count = _count(shape)
    if datatype == "BYTES":
        return _bytes_from_json(name, data, count).reshape(shape)
    dtype = numpy_dtype(datatype)
    try:
        if dtype.kind == "f":
            arr = np.asarray(data, dtype=dtype)
            # JSON has no NaN or infinity: a NaN here was a null, an infinity a number beyond the datatype's range
            if arr.size and not np.isfinite(arr).all():
                raise _not_finite(name, datatype, arr)
        else:
            # integers and booleans: refuse lossy JSON (1.5 as INT32, 1 as BOOL) instead of truncating
            probe = np.asarray(data)
            want = "b" if datatype == "BOOL" else "iu"
            if (
                probe.size
                and probe.dtype.kind not in want
                # integers beyond int64 (UINT64) make numpy guess float or object: check the values themselves
                and (datatype == "BOOL" or not all(type(v) is int for v in _flatten(data)))
            ):
                expected = "true/false" if datatype == "BOOL" else "integers"
                raise InvalidInput(f"input {name!r}: {datatype} data must be {expected}, got {probe.dtype.name} values")
            arr = probe if probe.dtype == dtype else np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise InvalidInput(f"input {name!r}: 'data' is not a valid {datatype} array ({e})") from None
    if arr.size != count:
        raise InvalidInput(f"input {name!r}: shape {list(shape)} needs {count} elements, 'data' has {arr.size}")
    return arr.reshape(shape)


def _not_finite(name: str, datatype: str, arr: np.ndarray) -> InvalidInput:
    if np.isnan(arr).any():
        return InvalidInput(f"input {name!r}: {datatype} data must be numbers (found null)")
    top = float(np.finfo(arr.dtype).max)
    return InvalidInput(f"input {name!r}: a value is outside the range of {datatype} (largest magnitude {top:.6g})")


def deserialize_bytes_tensor(name: str, buf: memoryview | bytes, count: int) -> np.ndarray:
    view = memoryview(buf)
    pos, n, i = 0, len(view), 0
    if count * 4 > n:  # each element has a 4-byte length: the declared shape cannot fit in the bytes present
        raise InvalidInput(
            f"input {name!r}: shape needs {count} BYTES elements, binary data of {n} bytes holds at most {n // 4}"
        )
    out = np.empty(count, dtype=object)
    while pos < n:
        if pos + 4 > n:
            raise InvalidInput(f"input {name!r}: truncated BYTES element length at offset {pos}")
        (length,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + length > n:
            raise InvalidInput(f"input {name!r}: BYTES element {i} runs past the end of its binary data")
        if i >= count:
            raise InvalidInput(f"input {name!r}: binary data holds more than the {count} elements of its shape")
        out[i] = bytes(view[pos : pos + length])
        pos += length
        i += 1
    if i != count:
        raise InvalidInput(f"input {name!r}: shape needs {count} BYTES elements, binary data has {i}")
    return out


def serialize_bytes_tensor(array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for v in array.reshape(-1):
        b = v if isinstance(v, bytes) else str(v).encode("utf-8") if not isinstance(v, bytearray) else bytes(v)
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _from_binary(name: str, datatype: str, shape: tuple[int, ...], buf: memoryview) -> np.ndarray:
    count = _count(shape)
    if datatype == "BYTES":
        return deserialize_bytes_tensor(name, buf, count).reshape(shape)
    dtype = numpy_dtype(datatype)
    if len(buf) != count * dtype.itemsize:
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"binary_data_size is {len(buf)}"
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def decode_request(body: bytes, header_length: int | None = None, max_elements: int = MAX_ELEMENTS) -> DecodedRequest:
    """Parse a V2 infer request body into numpy arrays; raises InvalidInput with the tensor's name."""
    head, binary = _split_body(body, header_length)
    doc, raw_inputs, params = _parse_head(head)
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    last_binary: str | None = None
    for raw in raw_inputs:
        name, datatype, shape, size = _input_header(raw, inputs, max_elements)
        if size is not None:
            if header_length is None:
                raise InvalidInput(
                    f"input {name!r} has binary_data_size but the request has no Inference-Header-Content-Length"
                )
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise InvalidInput(f"input {name!r}: binary_data_size {size} runs past the end of the body")
            inputs[name] = _from_binary(name, datatype, shape, binary[offset : offset + size])
            offset += size
            last_binary = name
        else:
            if "data" not in raw:
                raise InvalidInput(f"input {name!r}: no 'data' and no binary_data_size")
            inputs[name] = _from_json(name, datatype, shape, raw["data"])
        datatypes[name] = datatype
    if offset != len(binary):
        after = f"after the last binary input {last_binary!r}" if last_binary else "but no input has binary_data_size"
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data {after}")
    rid = doc.get("id")
    return DecodedRequest(
        id=str(rid) if rid is not None else None,
        inputs=inputs,
        datatypes=datatypes,
        parameters=params,
        outputs=_requested_outputs(doc.get("outputs")),
        binary_output_default=bool(params.get("binary_data_output", False)),
    )


def _split_body(body: bytes, header_length: int | None) -> tuple[bytes, memoryview]:
    """The JSON head and the binary tail of a body (the binary tensor extension)."""
    if header_length is None:
        return body, memoryview(b"")
    if header_length < 0 or header_length > len(body):
        raise InvalidInput(f"Inference-Header-Content-Length {header_length} is outside the body of {len(body)} bytes")
    return body[:header_length], memoryview(body)[header_length:]


def _parse_head(head: bytes) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """The JSON document, its non-empty 'inputs' list and its 'parameters' object."""
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("request needs a non-empty 'inputs' list")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object")
    return doc, raw_inputs, params


def _input_header(raw: Any, seen: dict[str, np.ndarray], max_elements: int) -> tuple[str, str, tuple[int, ...], Any]:
    """An input's name, datatype and shape, checked, and its binary_data_size (None: the data is JSON)."""
    if not isinstance(raw, dict):
        raise InvalidInput("each element of 'inputs' must be an object with name, shape, datatype, data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput("an input has no 'name'")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"input name {clip(name)!r} is longer than {MAX_NAME} characters")
    if name in seen:
        raise InvalidInput(f"input {name!r} appears twice")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidInput(f"input {name!r}: missing 'datatype'")
    try:
        numpy_dtype(datatype)  # validates the name
    except InvalidInput as e:
        raise InvalidInput(f"input {name!r}: {e.message}") from None
    shape = _shape(name, raw.get("shape"), max_elements)
    iparams = raw.get("parameters") or {}
    return name, datatype, shape, iparams.get("binary_data_size") if isinstance(iparams, dict) else None


def _requested_outputs(raw_outputs: Any) -> list[RequestedOutput] | None:
    if raw_outputs is None:
        return None
    if not isinstance(raw_outputs, list):
        raise InvalidInput("'outputs' must be a list of {name, parameters}")
    outputs = []
    for o in raw_outputs:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InvalidInput("each requested output needs a 'name'")
        op = o.get("parameters") or {}
        if not isinstance(op, dict):
            raise InvalidInput(f"requested output {o['name']!r}: 'parameters' must be an object")
        outputs.append(RequestedOutput(o["name"], bool(op.get("binary_data", False)), op))
    return outputs


def _json_data(array: np.ndarray) -> tuple[Any, dict[str, Any] | None]:
    if array.dtype.kind in ("O", "S", "U"):
        flat = array.reshape(-1)
        try:
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in flat], None
        except UnicodeDecodeError:
            # Not text: send base64 so the JSON stays valid; binary_data avoids this entirely.
            return [base64.b64encode(v).decode() if isinstance(v, bytes) else str(v) for v in flat], {
                "content_encoding": "base64"
            }
    return np.ascontiguousarray(array).reshape(-1), None


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    binary: set[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """Serialize outputs; returns (body, json_header_length or None when nothing is binary)."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in outputs.items():
        arr = np.asarray(array)
        entry: dict[str, Any] = {"name": name, "datatype": v2_datatype(arr), "shape": list(arr.shape)}
        if binary and name in binary:
            raw = serialize_bytes_tensor(arr) if entry["datatype"] == "BYTES" else np.ascontiguousarray(arr).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            data, extra = _json_data(arr)
            entry["data"] = data
            if extra:
                entry["parameters"] = extra
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = parameters
    head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
