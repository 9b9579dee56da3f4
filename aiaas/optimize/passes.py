"""The passes that produce or rewrite ONNX: ``export-onnx``, ``graph``, ``quantize-dynamic``, ``quantize-static``,
``fp16``; ``run_pass`` dispatches every pass, including the quantizers (``quantize``), the torch ones
(``torch_passes``) and ``tvm``.

Each pass writes a new file in the work directory and records what it did (exporter used, fusions applied,
quantization mode and the op types left in float) -- the report is built from those records, so a pass that
silently did nothing (no fusion matched, no op quantized) shows up as such instead of as a "faster" model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from aiaas.errors import InvalidInput
from aiaas.optimize.artifacts import Artifact, Evaluation, FineTune, Progress, TorchSource, no_progress
from aiaas.optimize.plan import PassSpec

log = logging.getLogger("aiaas.optimize")


@dataclass
class PassContext:
    workdir: Path
    evaluation: Evaluation | None = None
    source: TorchSource | None = None
    fine_tune: FineTune | None = None
    progress: Progress = no_progress
    target: str = "cpu"
    counter: list[int] = field(default_factory=lambda: [0])

    def new_path(self, stem: str, suffix: str = ".onnx") -> Path:
        self.counter[0] += 1
        return self.workdir / f"{self.counter[0]:02d}-{stem}{suffix}"


def run_pass(spec: PassSpec, artifact: Artifact, ctx: PassContext) -> Artifact:
    from aiaas.optimize import quantize, torch_passes

    fn = {
        "export-onnx": export_onnx,
        "graph": graph_optimize,
        "quantize-dynamic": quantize.quantize_dynamic,
        "quantize-static": quantize.quantize_static,
        "fp16": to_fp16,
        "prune": torch_passes.prune,
        "distill": torch_passes.distill,
        "tvm": _tvm,
    }[spec.name]
    return fn(artifact, spec.options, ctx)


def _tvm(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    from aiaas.optimize.tvm_backend import compile_onnx

    assert artifact.path is not None
    out = ctx.new_path("tvm", ".so")
    details = compile_onnx(
        artifact.path,
        out,
        target=options.get("target"),
        mcpu=options.get("mcpu"),
        opt_level=int(options.get("opt_level", 3)),
    )
    return artifact.derive("tvm", "tvm", details, path=out)


# -- export-onnx ----------------------------------------------------------------------------------------------
def export_onnx(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    """torch -> ONNX with a dynamic batch axis. ``exporter=auto`` tries dynamo, then TorchScript (opset 17).

    Both results are checked against torch on a batch of a different size than the example, so a batch axis
    the exporter specialised away is caught here and not in production.
    """
    import torch

    src = ctx.source
    if src is None or artifact.net is None:
        raise InvalidInput("export-onnx needs a torch source")
    module = (src.wrap(artifact.net) if src.wrap else artifact.net).eval()
    example = tuple(t if t.shape[0] >= 2 else torch.cat([t, t]) for t in src.example_inputs)  # dynamo specialises 1
    check = tuple(torch.cat([t] * 2)[: max(3, int(options.get("check_rows", 4)))] for t in example)
    order = {"auto": ["dynamo", "torchscript"], "dynamo": ["dynamo"], "torchscript": ["torchscript"]}[
        options["exporter"]
    ]
    errors: dict[str, str] = {}
    for exporter in order:
        path = ctx.new_path(f"export-{exporter}")
        try:
            _export(
                module,
                example,
                path,
                src.input_names,
                src.output_names,
                exporter,
                int(options.get("opset", 17)),
            )
            diff = _parity(module, path, check, src.input_names)
        except Exception as e:  # the exporters raise many types; the fallback is the point
            errors[exporter] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
            log.info("export with %s failed: %s", exporter, errors[exporter])
            continue
        if not diff <= 1e-3:
            errors[exporter] = f"outputs differ from torch by {diff:.3g}"
            continue
        opset = next(
            (
                o.version
                for o in onnx.load(str(path), load_external_data=False).opset_import
                if o.domain in ("", "ai.onnx")
            ),
            None,
        )
        return artifact.derive(
            "onnx",
            "export-onnx",
            {
                "exporter": exporter,
                "opset": opset,
                "max_abs_diff_vs_torch": diff,
                "failed": errors,
            },
            path=path,
        )
    raise InvalidInput("export-onnx failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))


def _export(
    module: Any,
    example: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    exporter: str,
    opset: int,
) -> None:
    import torch

    sink = io.StringIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # the fused transformer fast path (aten::_transformer_encoder_layer_fwd) has no ONNX export: trace the plain ops
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _export_quiet(module, example, path, input_names, output_names, exporter, opset, sink)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export_quiet(
    module: Any,
    example: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    exporter: str,
    opset: int,
    sink: io.StringIO,
) -> None:
    import torch

    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=tuple({0: batch} for _ in example),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        else:
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes={n: {0: "batch"} for n in (*input_names, *output_names)},
                opset_version=opset,
                dynamo=False,
            )


def _parity(module: Any, path: Path, check: tuple[Any, ...], input_names: list[str]) -> float:
    import torch

    with torch.no_grad():
        ref = module(*check)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: t.numpy() for n, t in zip(input_names, check, strict=True)})
    diff = 0.0
    for r, g in zip(refs, got, strict=True):
        r = r.numpy()
        if r.shape != g.shape:
            raise ValueError(f"output shape {list(g.shape)} != torch {list(r.shape)} (batch axis not dynamic?)")
        if r.dtype.kind in "iub":
            diff = max(diff, float((r != g).mean()))  # labels: share of rows that disagree
        else:
            diff = max(diff, float(np.abs(r.astype(np.float64) - g).max()) if r.size else 0.0)
    return diff


# -- graph ---------------------------------------------------------------------------------------------------
_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def op_histogram(path: Path) -> dict[str, int]:
    model = onnx.load(str(path), load_external_data=False)
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def looks_like_transformer(path: Path) -> bool:
    ops = op_histogram(path)
    return (
        ops.get("Softmax", 0) > 0
        and ops.get("MatMul", 0) >= 4
        and (ops.get("LayerNormalization", 0) > 0 or ops.get("ReduceMean", 0) > 0)
    )


def graph_optimize(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    """BERT-style fusions (attention, layer norm, GELU) where they match, then onnxruntime's offline optimizer.

    ``level=all`` adds layout transformations tuned to this CPU; the file is then only valid on a machine like
    this one (the report says so). ``extended`` is the portable default.
    """
    assert artifact.path is not None
    src = artifact.path
    details: dict[str, Any] = {"level": options["level"], "ops_before": sum(op_histogram(src).values())}
    want = options["transformer"]
    if want == "bert" or (want == "auto" and looks_like_transformer(src)):
        details["transformer_fusions"] = _bert_fusions(src, ctx, options, details)
        if details.get("transformer_path"):
            src = Path(details.pop("transformer_path"))
    out = ctx.new_path(f"graph-{options['level']}")
    so = ort.SessionOptions()
    so.graph_optimization_level = _LEVELS[options["level"]]
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"])
    details["ops_after"] = sum(op_histogram(out).values())
    details["portable"] = options["level"] != "all"
    details["op_types"] = op_histogram(out)
    return artifact.derive("onnx", "graph", details, path=out)


def _bert_fusions(
    src: Path, ctx: PassContext, options: dict[str, Any], details: dict[str, Any]
) -> dict[str, int] | str:
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as e:  # pragma: no cover - ships with onnxruntime
        return f"unavailable: {e}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = optimize_model(
                str(src),
                model_type="bert",
                num_heads=int(options["num_heads"]),
                hidden_size=int(options["hidden_size"]),
                opt_level=0,
            )
            stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    except Exception as e:  # the fusion scripts assert on graphs they do not understand
        return f"failed: {type(e).__name__}: {e}"
    if stats:
        path = ctx.new_path("bert-fusions")
        opt.save_model_to_file(str(path))
        details["transformer_path"] = str(path)
    return stats or "none matched"


# -- fp16 ----------------------------------------------------------------------------------------------------
def to_fp16(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:  # pragma: no cover - ships with onnxruntime
        raise InvalidInput("fp16 needs onnxruntime.transformers.float16, which this onnxruntime lacks") from None
    assert artifact.path is not None
    model = onnx.load(str(artifact.path))
    keep_io = bool(options["keep_io_types"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_float_to_float16(model, keep_io_types=keep_io)
    out = ctx.new_path("fp16")
    onnx.save(converted, str(out))
    details = {
        "mode": "fp16",
        "keep_io_types": keep_io,
        "target": ctx.target,
        "forced": bool(options["force"]),
        "op_types": op_histogram(out),
    }
    return artifact.derive("onnx", "fp16", details, path=out)
