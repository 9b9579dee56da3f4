"""The machine and tool versions a measurement was taken on: int8 speed depends on VNNI/AMX, so a report without
the CPU flags cannot be compared with another one."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

_TOOLS = ("onnxruntime", "onnx", "torch", "apache-tvm", "onnxscript", "numpy")


@functools.cache
def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "flags": {
            "avx2": "avx2" in flags,
            "avx512": "avx512f" in flags,
            "vnni": bool({"avx512_vnni", "avx_vnni"} & flags),
            "avx512_bf16": "avx512_bf16" in flags,
            "avx512_fp16": "avx512_fp16" in flags,
            "amx": bool({"amx_int8", "amx_tile", "amx_bf16"} & flags),
        },
    }


def tool_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
