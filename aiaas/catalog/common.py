"""Helpers shared by catalog builds: ONNX latency, sizes, tabular export and the card they produce."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def snake(name: str) -> str:
    """'mean radius' -> 'mean_radius': tensor names clients can type."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def onnx_latency_ms(path: Path, feed: dict[str, np.ndarray], runs: int = 50) -> dict[str, float]:
    """p50/p99 of one onnxruntime call on ``feed`` (one thread), for the model card."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


def package_version(dist: str) -> str:
    """The installed version of a distribution, for model cards ("?" when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()) / 1e6, 3)


def sklearn_to_onnx(model: Any, feature_names: list[str], path: Path) -> Path:
    """Export a fitted sklearn classifier with one named FP32 input [-1, 1] per feature (string labels kept).

    skl2onnx converts with one matrix input; a Concat node in front gives clients named features."""
    import onnx
    from onnx import helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, len(feature_names)]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    graph = onx.graph
    del graph.input[:]
    graph.input.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["batch", 1]) for n in feature_names)
    graph.node.insert(0, helper.make_node("Concat", list(feature_names), ["features"], axis=1, name="named_features"))
    onnx.checker.check_model(onx)
    path.write_bytes(onx.SerializeToString())
    return path


def tabular_feed(x: np.ndarray, feature_names: list[str]) -> dict[str, np.ndarray]:
    import numpy as np

    return {n: x[:, i : i + 1].astype(np.float32) for i, n in enumerate(feature_names)}
