"""Tensor helpers shared by the text models: BYTES rows in, BYTES/JSON rows out, threads, positive ints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.types.model_config import ModelConfig


def texts(inputs: dict[str, np.ndarray], name: str = "text") -> list[str]:
    """The UTF-8 strings of BYTES input ``name`` (one per row); a clear 400 when the input is missing/not text."""
    arr = inputs.get(name)
    if arr is None:
        raise InvalidInput(f"input {name!r} is required (BYTES, one UTF-8 string per row)")
    out = []
    for i, v in enumerate(np.asarray(arr, dtype=object).reshape(-1)):
        if isinstance(v, str):
            out.append(v)
            continue
        try:
            out.append(bytes(v).decode("utf-8"))
        except (UnicodeDecodeError, TypeError):
            raise InvalidInput(f"input {name!r} row {i} is not UTF-8 text") from None
    return out


def bytes_tensor(values: Sequence[str | bytes]) -> np.ndarray:
    """An object array of ``bytes`` (what BYTES outputs are), one element per value."""
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v.encode("utf-8") if isinstance(v, str) else bytes(v)
    return arr


def json_tensor(values: Sequence[Any]) -> np.ndarray:
    """One compact JSON document per row, as BYTES: for per-row results of varying size (segments, ...)."""
    return bytes_tensor([json.dumps(v, separators=(",", ":")) for v in values])


def int_parameter(parameters: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """A request parameter that must be an integer in [low, high]; JSON clients may send it as a string."""
    value = parameters.get(name, default)
    try:
        n = int(value)
        if isinstance(value, float) and n != value:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidInput(f"parameter {name!r} must be an integer, got {value!r}") from None
    if not low <= n <= high:
        raise InvalidInput(f"parameter {name!r} must be between {low} and {high}, got {n}")
    return n


def float_parameter(parameters: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = parameters.get(name, default)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"parameter {name!r} must be a number, got {value!r}") from None
    if not low <= x <= high:
        raise InvalidInput(f"parameter {name!r} must be between {low:g} and {high:g}, got {x:g}")
    return x


def ort_session(path: str, config: ModelConfig, default_threads: int = 0) -> Any:
    """An onnxruntime CPU session honouring the config's ``runtime`` thread options, like the onnx backend."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    threads = config.runtime.intra_op_threads or default_threads
    if threads:
        opts.intra_op_num_threads = threads
    if config.runtime.inter_op_threads:
        opts.inter_op_num_threads = config.runtime.inter_op_threads
    opts.log_severity_level = 3  # unused-initializer warnings of exported graphs are noise in server logs
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
