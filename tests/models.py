"""Tiny ONNX and python models built locally for the tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def mlp(path: Path, n_in: int = 4, n_hidden: int = 8, n_out: int = 3, seed: int = 0) -> Path:
    """y = relu(x W1 + b1) W2 + b2 with a dynamic batch axis."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((n_in, n_hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(n_hidden).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((n_hidden, n_out)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(n_out).astype(np.float32), "b2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        [w1, b1, w2, b2],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def mlp_reference(x: np.ndarray, n_in: int = 4, n_hidden: int = 8, n_out: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((n_in, n_hidden)).astype(np.float32)
    b1 = rng.standard_normal(n_hidden).astype(np.float32)
    w2 = rng.standard_normal((n_hidden, n_out)).astype(np.float32)
    b2 = rng.standard_normal(n_out).astype(np.float32)
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def identity(path: Path, elem_type: int) -> Path:
    """out = Identity(inp), any shape with a dynamic batch axis: round-trips every datatype."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["inp"], ["out"])],
        "identity",
        [helper.make_tensor_value_info("inp", elem_type, ["batch", "n"])],
        [helper.make_tensor_value_info("out", elem_type, ["batch", "n"])],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def scale(path: Path, factor: float) -> Path:
    """y = x * factor (for pipelines)."""
    f = numpy_helper.from_array(np.array([factor], dtype=np.float32), "f")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "f"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
        [f],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)
