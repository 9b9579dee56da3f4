"""KServe V2 datatype names and their numpy dtype strings (shared by the server codecs and the client)."""

from __future__ import annotations

V2_NUMPY_NAMES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
NUMPY_V2_NAMES: dict[str, str] = {v: k for k, v in V2_NUMPY_NAMES.items()} | {"bytes": "BYTES", "str": "BYTES"}
