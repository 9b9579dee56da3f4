"""KServe V2 gRPC tensors (``inference.ModelInferRequest`` / ``ModelInferResponse``) <-> numpy.

The messages are read and filled duck-typed, so this module needs no protobuf import. Decoding goes through
the REST codec's own shape and binary checks (``aiaas.codecs.v2``), so a limit or validation added there holds
for both transports. Inputs come either as ``raw_input_contents`` (one little-endian blob per input, BYTES as
4-byte-length-prefixed elements, exactly REST's binary extension) or as typed ``contents``; outputs are always
answered as ``raw_output_contents``, which is what ``tritonclient.grpc``'s ``as_numpy`` reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiaas.codecs.datatypes import numpy_dtype, v2_datatype
from aiaas.codecs.v2 import (
    MAX_ELEMENTS,
    DecodedRequest,
    RequestedOutput,
    _count,
    _from_binary,
    _shape,
    serialize_bytes_tensor,
)
from aiaas.errors import InvalidInput

# datatype -> the InferTensorContents field that carries it (FP16 and BF16 have none: raw only)
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters(params: Any) -> dict[str, Any]:
    """A map<string, InferParameter> as plain Python values."""
    out: dict[str, Any] = {}
    for key, p in params.items():
        kind = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, kind) if kind is not None else None
    return out


def set_parameter(params: Any, key: str, value: Any) -> None:
    if isinstance(value, bool):
        params[key].bool_param = value
    elif isinstance(value, int):
        params[key].int64_param = value
    elif isinstance(value, float):
        params[key].double_param = value
    else:
        params[key].string_param = str(value)


def _from_contents(name: str, datatype: str, shape: tuple[int, ...], contents: Any) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(f"input {name!r}: {datatype} has no typed 'contents' field; send it in raw_input_contents")
    values = getattr(contents, field)
    count = _count(shape)
    if len(values) != count:
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} needs {count} elements, contents.{field} has {len(values)}"
        )
    if datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        arr[:] = list(values)
        return arr.reshape(shape)
    dtype = numpy_dtype(datatype)
    if dtype.kind in "iu" and dtype.itemsize < 8:  # int_contents / uint_contents are 32-bit: check the narrow range
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(dtype)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            raise InvalidInput(f"input {name!r}: a value of contents.{field} is outside the range of {datatype}")
        return wide.astype(dtype).reshape(shape)
    return np.asarray(values, dtype=dtype).reshape(shape)


def decode_infer_request(msg: Any, max_elements: int = MAX_ELEMENTS) -> DecodedRequest:
    """A ModelInferRequest as the REST codec's DecodedRequest; raises InvalidInput naming the tensor."""
    if not msg.inputs:
        raise InvalidInput("request needs at least one input")
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(msg.inputs)} inputs; send every input raw or none"
        )
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    tensors = msg.inputs
    for i in range(len(tensors)):  # indexing a repeated field is several times cheaper than iterating it (upb)
        t = tensors[i]
        name = t.name
        if not name:
            raise InvalidInput("an input has no 'name'")
        if name in inputs:
            raise InvalidInput(f"input {name!r} appears twice")
        try:
            numpy_dtype(t.datatype)
        except InvalidInput as e:
            raise InvalidInput(f"input {name!r}: {e.message}") from None
        shape = _shape(name, t.shape[:], max_elements)  # a slice is a plain list, built in C
        if raw:
            if t.HasField("contents"):
                raise InvalidInput(f"input {name!r} has both contents and raw_input_contents")
            inputs[name] = _from_binary(name, t.datatype, shape, memoryview(raw[i]))
        else:
            inputs[name] = _from_contents(name, t.datatype, shape, t.contents)
        datatypes[name] = t.datatype
    outputs = [RequestedOutput(o.name, True, parameters(o.parameters)) for o in msg.outputs] if msg.outputs else None
    params = parameters(msg.parameters) if msg.parameters else {}
    return DecodedRequest(msg.id or None, inputs, datatypes, params, outputs, True)


def encode_outputs(response: Any, outputs: dict[str, np.ndarray]) -> None:
    """Append every output to a ModelInferResponse as a raw tensor."""
    for name, array in outputs.items():
        arr = np.asarray(array)
        datatype = v2_datatype(arr)
        out = response.outputs.add()
        out.name = name
        out.datatype = datatype
        out.shape.extend(arr.shape)
        response.raw_output_contents.append(
            serialize_bytes_tensor(arr) if datatype == "BYTES" else np.ascontiguousarray(arr).tobytes()
        )
