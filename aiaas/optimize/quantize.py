"""The quantization passes: ``quantize-dynamic`` and ``quantize-static`` (onnxruntime's int8 quantizer, with
its pre-processing), the calibration feed, and ``quantization_summary`` (which ops a model runs in int8 and which
are left in float: the record that keeps a pass that quantized nothing from passing as "faster").
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from aiaas.errors import InvalidInput
from aiaas.optimize.artifacts import Artifact
from aiaas.optimize.passes import PassContext
from aiaas.optimize.sysinfo import cpu_info

log = logging.getLogger("aiaas.optimize")

_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QLinearConv",
    "QLinearMatMul",
    "QLinearAdd",
    "QLinearMul",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearAveragePool",
    "QLinearGlobalAveragePool",
    "QLinearConcat",
    "QLinearSoftmax",
    "QAttention",
    "QGemm",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QEmbedLayerNormalization",
    "DynamicQuantizeLSTM",
    "QOrderedMatMul",
}
_HEAVY = {
    "MatMul",
    "Gemm",
    "Conv",
    "ConvTranspose",
    "Attention",
    "MultiHeadAttention",
    "LSTM",
    "GRU",
    "FusedMatMul",
    "FusedConv",
    "FusedGemm",
    "EmbedLayerNormalization",
    "Einsum",
}


def quantization_summary(path: Path) -> dict[str, Any]:
    """Op types of a quantized graph: which heavy ops run in int8 and which were left in float.

    In QDQ form a heavy op counts as quantized when an input comes from a DequantizeLinear (onnxruntime fuses
    the pattern into an int8 kernel); in operator form the int8 ops have their own names (MatMulInteger, ...).
    """
    model = onnx.load(str(path), load_external_data=False)
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    quantized: Counter[str] = Counter()
    left: Counter[str] = Counter()
    for n in model.graph.node:
        if n.op_type in _QUANT_OPS and n.op_type not in (
            "QuantizeLinear",
            "DequantizeLinear",
            "DynamicQuantizeLinear",
        ):
            quantized[n.op_type] += 1
        elif n.op_type in _HEAVY:
            if any(producer.get(i) == "DequantizeLinear" for i in n.input):
                quantized[n.op_type] += 1
            else:
                left[n.op_type] += 1
    return {
        "quantized_ops": dict(sorted(quantized.items())),
        "fp32_ops": dict(sorted(left.items())),
        "op_types": dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
    }


def _reduce_range(option: Any) -> bool:
    """7-bit weights avoid int16 overflow in the u8s8 kernels of CPUs without VNNI (onnxruntime's advice)."""
    if option == "auto":
        return not cpu_info()["flags"].get("vnni", False)
    return bool(option)


def _preprocess(src: Path, ctx: PassContext, enabled: bool, details: dict[str, Any]) -> Path:
    """Symbolic shape inference + basic optimization, as onnxruntime recommends before quantizing."""
    if not enabled:
        return src
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = ctx.new_path("preprocessed")
    failed: list[str] = []
    for symbolic in (
        True,
        False,
    ):  # symbolic shape inference asserts on some exported graphs; ONNX's is the fallback
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(src), str(out), skip_symbolic_shape=not symbolic)
        except Exception as e:  # pre-processing is an improvement, not a requirement
            failed.append(f"{'symbolic' if symbolic else 'onnx'} shape inference: {type(e).__name__}: {e}".strip())
            continue
        details["preprocess"] = "done" + (" (without symbolic shape inference)" if not symbolic else "")
        return out
    details["preprocess"] = "skipped: " + "; ".join(failed)
    return src


def quantize_dynamic(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    assert artifact.path is not None
    details: dict[str, Any] = {
        "mode": "dynamic",
        "format": "QOperator",
        "weight_type": options["weight_type"],
        "activations": "uint8, quantized at run time per batch",
        "per_channel": bool(options["per_channel"]),
        "reduce_range": _reduce_range(options["reduce_range"]),
    }
    src = _preprocess(artifact.path, ctx, bool(options["preprocess"]), details)
    out = ctx.new_path("quantize-dynamic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ort_quantize_dynamic(
            str(src),
            str(out),
            per_channel=details["per_channel"],
            reduce_range=details["reduce_range"],
            weight_type=QuantType.QInt8 if options["weight_type"] == "qint8" else QuantType.QUInt8,
            op_types_to_quantize=options["op_types"],
            # ops from onnxruntime's own domain (FusedMatMul after the graph pass) have no ONNX type inference
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    details.update(quantization_summary(out))
    if not details["quantized_ops"]:
        raise InvalidInput(
            "quantize-dynamic quantized no operator (no MatMul/Gemm/Conv/Attention with constant weights)"
        )
    return artifact.derive("onnx", "quantize-dynamic", details, path=out)


class _Reader:
    """onnxruntime CalibrationDataReader over a feed dict, in batches."""

    def __init__(self, feed: dict[str, np.ndarray], batch: int) -> None:
        n = len(next(iter(feed.values())))
        self._batches = iter([{k: v[i : i + batch] for k, v in feed.items()} for i in range(0, n, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_static(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    assert artifact.path is not None
    feed = calibration_feed(ctx)
    rows = int(options["calibration_rows"])
    feed = {k: v[:rows] for k, v in feed.items()}
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    qtype = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    details: dict[str, Any] = {
        "mode": "static",
        "format": "QDQ",
        "calibration": options["method"],
        "calibration_rows": len(next(iter(feed.values()))),
        "activation_type": options["activation_type"],
        "weight_type": options["weight_type"],
        "per_channel": bool(options["per_channel"]),
        "reduce_range": _reduce_range(options["reduce_range"]),
    }
    src = _preprocess(artifact.path, ctx, bool(options["preprocess"]), details)
    out = ctx.new_path(f"quantize-static-{options['method']}")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        ort_quantize_static(
            str(src),
            str(out),
            _Reader(feed, int(options["calibration_batch"])),
            quant_format=QuantFormat.QDQ,
            per_channel=details["per_channel"],
            reduce_range=details["reduce_range"],
            activation_type=qtype[options["activation_type"]],
            weight_type=qtype[options["weight_type"]],
            calibrate_method=methods[options["method"]],
            op_types_to_quantize=options["op_types"],
            # ops from onnxruntime's own domain (FusedMatMul after the graph pass) have no ONNX type inference
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    details.update(quantization_summary(out))
    if not details["quantized_ops"]:
        raise InvalidInput("quantize-static quantized no operator")
    return artifact.derive("onnx", "quantize-static", details, path=out)


def calibration_feed(ctx: PassContext) -> dict[str, np.ndarray]:
    """The calibration rows: the evaluation's calibration set, else the torch source's training inputs."""
    ev = ctx.evaluation
    if ev is not None and ev.calibration is not None:
        return ev.calibration
    src = ctx.source
    # the served model takes what the wrapped module takes: those are the training inputs only without a wrap
    if src is not None and src.train is not None and src.wrap is None:
        return {n: t.numpy() for n, t in zip(src.input_names, src.train.inputs, strict=True)}
    raise InvalidInput(
        "quantize-static needs a calibration set (evaluation.calibration: rows like the serving "
        "inputs, not the evaluation rows)"
    )
