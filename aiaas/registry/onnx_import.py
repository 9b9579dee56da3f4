"""``aiaas models import FILE.onnx``: write a model config from the ONNX graph and add a version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from pydantic import ValidationError

from aiaas.errors import InvalidInput
from aiaas.registry.repository import ModelRepository, format_validation_error
from aiaas.types.model_config import ModelConfig, TensorSpec

_ELEM_TO_V2 = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.STRING: "BYTES",
}


def _specs(values: Any) -> list[TensorSpec]:
    specs = []
    for v in values:
        tt = v.type.tensor_type
        if tt.elem_type not in _ELEM_TO_V2:
            raise InvalidInput(f"tensor {v.name!r} has ONNX element type {tt.elem_type}, which aiaas cannot serve")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tt.shape.dim]
        specs.append(TensorSpec(name=v.name, datatype=_ELEM_TO_V2[tt.elem_type], shape=dims))  # type: ignore[arg-type]
    return specs


def config_from_onnx(path: Path, max_batch_size: int = 64, description: str = "") -> ModelConfig:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends
        raise InvalidInput(f"{path} is not a readable ONNX model: {e}") from None
    graph = model.graph
    # protobuf happily parses an empty file (and some other bytes) as an empty ModelProto
    if model.ir_version <= 0 or not graph.output:
        raise InvalidInput(f"{path} is not an ONNX model (no IR version or no graph outputs)")
    initializers = {i.name for i in graph.initializer}
    inputs = _specs([i for i in graph.input if i.name not in initializers])
    outputs = _specs(graph.output)
    batchable = bool(inputs) and all(t.shape and t.shape[0] == -1 for t in (*inputs, *outputs))
    return ModelConfig(
        backend="onnx",
        description=description or f"imported from {path.name}",
        inputs=inputs,
        outputs=outputs,
        max_batch_size=max_batch_size if batchable else 0,
    )


def import_onnx(
    repo: ModelRepository,
    file: Path,
    name: str,
    version: int | None = None,
    max_batch_size: int = 64,
    overrides: dict[str, Any] | None = None,
) -> tuple[ModelConfig, int]:
    """Add ``file`` as a new version of ``name``; writes model.yaml from the graph for a new model."""
    if not file.is_file():
        raise InvalidInput(f"{file} does not exist")
    config = config_from_onnx(file, max_batch_size)
    if overrides:
        try:
            config = ModelConfig.model_validate({**config.model_dump(), **overrides})
        except ValidationError as e:
            raise InvalidInput(f"invalid config overrides: {format_validation_error(e)}") from None
    files = {"model.onnx": file}
    external = file.with_name(file.name + ".data")  # torch's external-data convention
    if external.is_file():
        files[external.name] = external
    is_new = not repo.exists(name)
    if not is_new:
        current = repo.read(name).config
        if current is not None and current.backend == "onnx":
            config = current
    v = repo.add_version(name, files, version)
    if is_new:
        repo.write_config(name, config)
    return config, v
