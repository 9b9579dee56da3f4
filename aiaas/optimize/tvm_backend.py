"""apache-tvm: compile an ONNX graph with the relax frontend into what the ``tvm`` runtime backend serves.

A compiled model is two files: ``model.so`` (the relax VM executable, exported as a shared library) and
``tvm.json`` (input/output names, types and shapes, which the library does not keep); the format, the runner and
the ``TvmModel`` backend live in ``aiaas.runtime.tvm``. Untuned TVM is much slower than onnxruntime on CPUs
(16-150x in a trial here) and its MetaSchedule tuning crashed, so no tuning is attempted; the report shows the
measured latency next to onnxruntime's. TVM is optional: everything here imports it lazily and refuses with the
install command when it is missing.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import onnx

from aiaas.errors import InvalidInput
from aiaas.runtime.tvm import SIDECAR, TVM_INSTALL, TvmModel, TvmRunner, sidecar_path

_ONNX_TO_NP = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}


def _tvm() -> Any:
    try:
        import tvm
    except ImportError:
        raise InvalidInput(f"TVM is not installed here: {TVM_INSTALL}") from None
    return tvm


def default_target(mcpu: str | None = None) -> dict[str, Any]:
    """``llvm`` in dict form with an explicit mtriple (the string form failed to pick the host triple here)."""
    machine = platform.machine() or "x86_64"
    target: dict[str, Any] = {
        "kind": "llvm",
        "mtriple": f"{machine}-pc-linux-gnu" if machine == "x86_64" else f"{machine}-unknown-linux-gnu",
    }
    if mcpu:
        target["mcpu"] = mcpu
    return target


def _io(model: onnx.ModelProto) -> dict[str, Any]:
    init = {i.name for i in model.graph.initializer}

    def spec(v: onnx.ValueInfoProto) -> dict[str, Any]:
        t = v.type.tensor_type
        if t.elem_type not in _ONNX_TO_NP:
            raise InvalidInput(
                f"tensor {v.name!r} has ONNX element type {t.elem_type}, which the tvm backend cannot serve"
            )
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
        return {"name": v.name, "dtype": _ONNX_TO_NP[t.elem_type], "shape": dims}

    return {
        "inputs": [spec(v) for v in model.graph.input if v.name not in init],
        "outputs": [spec(v) for v in model.graph.output],
    }


def compile_onnx(
    src: Path,
    out: Path,
    target: dict[str, Any] | str | None = None,
    mcpu: str | None = None,
    opt_level: int = 3,
) -> dict[str, Any]:
    """ONNX -> ``out`` (.so) + ``tvm.json`` beside it; returns the details for the report."""
    tvm = _tvm()
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load(str(src))
    io = _io(model)
    t0 = time.perf_counter()
    mod = from_onnx(model, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    tgt = tvm.target.Target(target if target is not None else default_target(mcpu))
    with tvm.transform.PassContext(opt_level=opt_level):
        ex = tvm.compile(mod, target=tgt) if hasattr(tvm, "compile") else relax.build(mod, target=tgt)
    ex.export_library(str(out))
    sidecar = {**io, "target": str(tgt), "tvm": getattr(tvm, "__version__", None), "tuned": False}
    (out.parent / (out.stem + ".json")).write_text(json.dumps(sidecar, indent=1))
    return {
        "target": str(tgt),
        "opt_level": opt_level,
        "tuned": False,
        "compile_s": round(time.perf_counter() - t0, 3),
        "note": "untuned (MetaSchedule tuning crashed in a trial here); compare its latency with onnxruntime's",
    }


__all__ = ["SIDECAR", "TvmModel", "TvmRunner", "compile_onnx", "default_target", "sidecar_path"]
