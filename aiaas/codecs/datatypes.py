"""KServe V2 datatypes <-> numpy dtypes."""

from __future__ import annotations

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.types.datatypes import NUMPY_V2_NAMES, V2_NUMPY_NAMES

V2_TO_NUMPY: dict[str, np.dtype] = {k: np.dtype(v) for k, v in V2_NUMPY_NAMES.items()}
NUMPY_TO_V2: dict[str, str] = NUMPY_V2_NAMES

# ONNX TensorProto element types (onnxruntime's "tensor(float)" strings) -> V2
ONNX_TYPE_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def numpy_dtype(datatype: str) -> np.dtype:
    try:
        return V2_TO_NUMPY[datatype]
    except KeyError:
        raise InvalidInput(f"unknown datatype {datatype[:40]!r}; expected one of {', '.join(V2_TO_NUMPY)}") from None


# dtype objects hash and compare fast; ``dtype.name`` is computed in Python each time (~1.5 us per call)
_BY_DTYPE: dict[np.dtype, str] = {np.dtype(n): v for n, v in NUMPY_TO_V2.items() if np.dtype(n).kind not in "OSU"}


def v2_datatype(array: np.ndarray) -> str:
    known = _BY_DTYPE.get(array.dtype)
    if known is not None:
        return known
    kind = array.dtype.kind
    if kind in ("O", "S", "U"):
        return "BYTES"
    try:
        return NUMPY_TO_V2[array.dtype.name]
    except KeyError:
        raise InvalidInput(f"numpy dtype {array.dtype} has no KServe V2 datatype") from None


def utf8_array(name: str, value: np.ndarray) -> np.ndarray:
    """A BYTES tensor as an object array of ``str`` for a model that needs text; 400 naming the input and the
    element when one is not valid UTF-8."""
    flat = np.asarray(value, dtype=object).reshape(-1)
    out = np.empty(flat.size, dtype=object)
    for i, v in enumerate(flat):
        if isinstance(v, bytes | bytearray):
            try:
                v = bytes(v).decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInput(
                    f"input {name!r} element {i} is not valid UTF-8 text ({e.reason} at byte {e.start})"
                ) from None
        out[i] = v
    return out.reshape(np.shape(value))
