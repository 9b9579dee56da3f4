"""apache-tvm: compile an ONNX graph with the relax frontend, and a ``tvm`` runtime backend that serves the result.

A compiled model is two files: ``model.so`` (the relax VM executable, exported as a shared library) and
``tvm.json`` (input/output names, types and shapes, which the library does not keep). Untuned TVM is much
slower than onnxruntime on CPUs (16-150x in a trial here) and its MetaSchedule tuning crashed, so no tuning is
attempted; the report shows the measured latency next to onnxruntime's. TVM is optional: everything here
imports it lazily and refuses with the install command when it is missing.

Registration as a runtime backend (``backend: tvm`` in model.yaml) happens in a later phase; ``TvmModel``
implements ``aiaas.runtime.Model`` so that is one ``register_backend("tvm", TvmModel)`` call.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from aiaas.errors import InvalidInput
from aiaas.optimize.plan import TVM_INSTALL
from aiaas.runtime.base import Model, Tensors
from aiaas.types.model_config import TensorSpec

SIDECAR = "tvm.json"
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
_NP_TO_V2 = {
    "float32": "FP32",
    "uint8": "UINT8",
    "int8": "INT8",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
    "float16": "FP16",
    "float64": "FP64",
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
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        return {"name": v.name, "dtype": _ONNX_TO_NP.get(t.elem_type, "float32"), "shape": dims}

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


def sidecar_path(library: Path) -> Path:
    """``model.so`` -> ``tvm.json`` in a version directory; ``NN-tvm.so`` -> ``NN-tvm.json`` in a work directory."""
    beside = library.parent / (library.stem + ".json")
    return beside if beside.is_file() else library.parent / SIDECAR


class TvmRunner:
    """One relax VM over a compiled library. Not thread-safe: one runner per thread."""

    def __init__(self, library: Path) -> None:
        tvm = _tvm()
        from tvm import relax

        self.io = json.loads(sidecar_path(library).read_text())
        self.input_names = [i["name"] for i in self.io["inputs"]]
        self.output_names = [o["name"] for o in self.io["outputs"]]
        self._tvm = tvm
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        make = getattr(self._tvm.runtime, "tensor", None) or self._tvm.nd.array
        args = [make(np.ascontiguousarray(feed[n])) for n in self.input_names]
        out = self._vm["main"](*args)
        items = [out] if hasattr(out, "numpy") else list(out)
        return [o.numpy() for o in items]


class TvmModel(Model):
    """``aiaas.runtime.Model`` over ``model.so`` + ``tvm.json`` in the version directory."""

    def load(self) -> None:
        library = self.version_dir / self.config.parameters.get("file", "model.so")
        if not library.is_file():
            raise FileNotFoundError(f"{library} does not exist")
        self.runner: TvmRunner | None = TvmRunner(library)

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        if self.runner is None:
            raise RuntimeError("model is not loaded")
        outputs = self.runner.run(inputs)
        return dict(zip(self.runner.output_names, outputs, strict=True))

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        assert self.runner is not None

        def spec(d: dict[str, Any]) -> TensorSpec:
            return TensorSpec(name=d["name"], datatype=_NP_TO_V2.get(d["dtype"], "FP32"), shape=d["shape"])  # type: ignore[arg-type]

        return [spec(d) for d in self.runner.io["inputs"]], [spec(d) for d in self.runner.io["outputs"]]

    def unload(self) -> None:
        self.runner = None
