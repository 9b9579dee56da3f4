"""onnxruntime backend: one InferenceSession per instance, session options from the model config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from aiaas.codecs.datatypes import ONNX_TYPE_TO_V2, utf8_array
from aiaas.runtime.base import BlockingModel, Tensors
from aiaas.types.model_config import TensorSpec

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def find_onnx_file(version_dir: Path, filename: str | None = None) -> Path:
    if filename:
        path = version_dir / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return path
    candidates = sorted(version_dir.glob("*.onnx"))
    if not candidates:
        raise FileNotFoundError(f"no .onnx file in {version_dir}")
    if len(candidates) > 1:
        named = [c for c in candidates if c.name == "model.onnx"]
        if named:
            return named[0]
        raise FileNotFoundError(f"several .onnx files in {version_dir}; name one with parameters.file in model.yaml")
    return candidates[0]


def _spec(arg: Any) -> TensorSpec:
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or [])]
    datatype = ONNX_TYPE_TO_V2.get(arg.type)
    if datatype is None:
        raise ValueError(f"tensor {arg.name!r} has type {arg.type}, which aiaas cannot serve")
    return TensorSpec(name=arg.name, datatype=datatype, shape=dims)  # type: ignore[arg-type]


class OnnxModel(BlockingModel):
    def load(self) -> None:
        rt = self.config.runtime
        opts = ort.SessionOptions()
        opts.graph_optimization_level = _LEVELS[rt.graph_optimization_level]
        threads = rt.intra_op_threads or self.context.default_intra_op_threads
        if threads:
            opts.intra_op_num_threads = threads
        if rt.inter_op_threads:
            opts.inter_op_num_threads = rt.inter_op_threads
        spin = "1" if rt.allow_spinning else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
        opts.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if rt.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        path = find_onnx_file(self.version_dir, self.config.parameters.get("file"))
        try:
            self.session: ort.InferenceSession | None = ort.InferenceSession(
                str(path), sess_options=opts, providers=providers
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"onnxruntime cannot load {path.name}: {e}") from None
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._string_inputs = {n for n, i in self._inputs.items() if i.type == "tensor(string)"}

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        assert self.session is not None
        return [_spec(i) for i in self.session.get_inputs()], [_spec(o) for o in self.session.get_outputs()]

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        session = self.session
        if session is None:
            raise RuntimeError("model is not loaded")
        feed: dict[str, np.ndarray] = {}
        for name, value in inputs.items():
            if name in self._string_inputs:
                value = utf8_array(name, value)
            feed[name] = value
        results = session.run(self._outputs, feed)
        return dict(zip(self._outputs, results, strict=True))

    def unload(self) -> None:
        self.session = None
