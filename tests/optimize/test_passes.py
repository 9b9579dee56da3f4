"""Each pass on a tiny model: it runs, records what it did, and the result still computes the same function."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from aiaas.errors import InvalidInput
from aiaas.optimize.artifacts import Artifact
from aiaas.optimize.measure import measure
from aiaas.optimize.passes import PassContext, run_pass
from aiaas.optimize.plan import parse_pass
from aiaas.optimize.torch_passes import scaled_hyperparameters

from .conftest import FAST, Task


def run(name: str, artifact: Artifact, ctx: PassContext, **options) -> Artifact:
    return run_pass(parse_pass({"name": name, **options}), artifact, ctx)


def ort_out(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def onnx_art(path: Path) -> Artifact:
    return Artifact("onnx", path=path)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_onnx_has_a_dynamic_batch_and_matches_torch(task: Task, tmp_path: Path, exporter: str) -> None:
    ctx = PassContext(tmp_path, source=task.source())
    art = run("export-onnx", Artifact("torch", net=task.net), ctx, exporter=exporter)
    assert art.kind == "onnx" and art.details["export-onnx"]["exporter"] == exporter
    x = task.x_te[:7]  # neither the example's batch (2) nor the check's
    with torch.no_grad():
        ref = task.net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ort_out(art.path, x), ref, atol=1e-4)


def test_export_falls_back_to_torchscript_when_dynamo_fails(task: Task, tmp_path: Path, monkeypatch) -> None:
    from aiaas.optimize import passes

    real = passes._export_quiet

    def broken_dynamo(module, example, path, inputs, outputs, exporter, opset, sink):
        if exporter == "dynamo":
            raise RuntimeError("dynamo cannot trace this")
        return real(module, example, path, inputs, outputs, exporter, opset, sink)

    monkeypatch.setattr(passes, "_export_quiet", broken_dynamo)
    art = run("export-onnx", Artifact("torch", net=task.net), PassContext(tmp_path, source=task.source()))
    d = art.details["export-onnx"]
    assert d["exporter"] == "torchscript" and "dynamo cannot trace this" in d["failed"]["dynamo"]


def test_graph_optimization_keeps_outputs(task: Task, onnx_mlp: Path, tmp_path: Path) -> None:
    art = run("graph", onnx_art(onnx_mlp), PassContext(tmp_path), level="extended")
    d = art.details["graph"]
    assert d["portable"] and d["ops_after"] <= d["ops_before"]
    np.testing.assert_allclose(ort_out(art.path, task.x_te), ort_out(onnx_mlp, task.x_te), atol=1e-5)


def test_graph_on_a_transformer_tries_the_fusions(encoder_task, tmp_path: Path) -> None:
    src = encoder_task.onnx(tmp_path)
    art = run("graph", onnx_art(src), PassContext(tmp_path))
    fusions = art.details["graph"]["transformer_fusions"]
    assert isinstance(fusions, dict | str)  # what matched, or why nothing did -- never silent
    x = encoder_task.x_te[:16]
    np.testing.assert_allclose(ort_out(art.path, x), ort_out(src, x), atol=1e-4)


def test_quantize_dynamic_int8_weights(task: Task, onnx_mlp: Path, tmp_path: Path) -> None:
    art = run("quantize-dynamic", onnx_art(onnx_mlp), PassContext(tmp_path), per_channel=True)
    d = art.details["quantize-dynamic"]
    assert d["mode"] == "dynamic" and d["per_channel"] is True and d["reduce_range"] in (True, False)
    assert sum(d["quantized_ops"].values()) >= 3 and d["fp32_ops"] == {}
    assert art.path.stat().st_size < onnx_mlp.stat().st_size
    a, b = ort_out(art.path, task.x_te), ort_out(onnx_mlp, task.x_te)
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.97


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_quantize_static_qdq(task: Task, onnx_mlp: Path, tmp_path: Path, method: str) -> None:
    ctx = PassContext(tmp_path, evaluation=task.evaluation())
    art = run("quantize-static", onnx_art(onnx_mlp), ctx, method=method, per_channel=True, calibration_rows=128)
    d = art.details["quantize-static"]
    assert d["format"] == "QDQ" and d["calibration"] == method and d["calibration_rows"] == 128
    assert d["op_types"].get("QuantizeLinear", 0) > 0 and d["op_types"].get("DequantizeLinear", 0) > 0
    assert sum(d["quantized_ops"].values()) >= 3
    a, b = ort_out(art.path, task.x_te), ort_out(onnx_mlp, task.x_te)
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.9


def test_quantize_static_without_calibration_data_is_refused(onnx_mlp: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="calibration set"):
        run("quantize-static", onnx_art(onnx_mlp), PassContext(tmp_path))


def test_fp16_forced_on_cpu_runs_close_to_fp32(task: Task, onnx_mlp: Path, tmp_path: Path) -> None:
    art = run("fp16", onnx_art(onnx_mlp), PassContext(tmp_path), force=True)
    assert art.details["fp16"]["keep_io_types"] is True
    assert art.path.stat().st_size < 0.7 * onnx_mlp.stat().st_size
    np.testing.assert_allclose(ort_out(art.path, task.x_te), ort_out(onnx_mlp, task.x_te), atol=5e-2)


def test_prune_unstructured_global(task: Task, tmp_path: Path) -> None:
    before = [p.detach().clone() for p in task.net.parameters()]
    art = run("prune", Artifact("torch", net=task.net), PassContext(tmp_path, source=task.source()), amount=0.5)
    d = art.details["prune"]
    assert abs(d["weight_sparsity"] - 0.5) < 0.01 and d["sparsity"] > 0.45
    assert all(torch.equal(a, b) for a, b in zip(before, task.net.parameters(), strict=True)), "source modified"
    assert not any(hasattr(m, "weight_orig") for m in art.net.modules()), "masks not made permanent"


def test_prune_structured_zeroes_whole_neurons_but_not_outputs(task: Task, tmp_path: Path) -> None:
    art = run(
        "prune",
        Artifact("torch", net=task.net),
        PassContext(tmp_path, source=task.source()),
        amount=0.25,
        method="structured",
        norm=2,
    )
    d = art.details["prune"]
    assert d["channels_zeroed"] == 2 * 16  # 25% of 64 neurons in each of the two hidden layers
    last = [m for m in art.net.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert int((last.weight.abs().sum(1) == 0).sum()) == 0


def test_prune_fine_tune_keeps_masks_and_recovers(task: Task, tmp_path: Path) -> None:
    ctx = PassContext(tmp_path, source=task.source(), fine_tune=None)
    from aiaas.optimize.torch_passes import local_fine_tune

    ctx.fine_tune = local_fine_tune
    raw = run("prune", Artifact("torch", net=task.net), ctx, amount=0.8)
    tuned = run("prune", Artifact("torch", net=task.net), ctx, amount=0.8, fine_tune_epochs=3, learning_rate=2e-3)
    assert abs(tuned.details["prune"]["weight_sparsity"] - 0.8) < 0.01

    def acc(net) -> float:
        with torch.no_grad():
            return float((net(torch.from_numpy(task.x_te)).argmax(1).numpy() == task.y_te).mean())

    assert acc(tuned.net) > acc(raw.net)


def test_distill_builds_a_smaller_student_that_learns(task: Task, tmp_path: Path) -> None:
    from aiaas.optimize.torch_passes import local_fine_tune

    ctx = PassContext(tmp_path, source=task.source(), fine_tune=local_fine_tune)
    art = run("distill", Artifact("torch", net=task.net), ctx, width=0.5, depth=0.5, epochs=6, learning_rate=3e-3)
    d = art.details["distill"]
    assert d["student_parameters"] < 0.3 * d["teacher_parameters"]
    with torch.no_grad():
        acc = float((art.net(torch.from_numpy(task.x_te)).argmax(1).numpy() == task.y_te).mean())
    assert acc > 0.6  # 4 classes: chance is ~0.25


def test_scaled_hyperparameters_shrink_architecture_only() -> None:
    hp = {"channels": [16, 32, 64], "hidden": 64, "learning_rate": 0.01}
    assert scaled_hyperparameters(hp, 0.5, 0.67) == {"channels": [8, 16], "hidden": 32, "learning_rate": 0.01}


def test_recipe_student_comes_from_the_recipe(tmp_path: Path) -> None:
    from aiaas.optimize.torch_passes import recipe_student

    meta = {"layout": "nhw", "image_shape": [8, 8], "dtype": "uint8", "channels_in": 1, "classes": [0, 1, 2]}
    teacher = recipe_student("image", {}, meta)(1.0, 1.0)
    student = recipe_student("image", {}, meta)(0.5, 0.5)
    n = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert n(student) < 0.3 * n(teacher)
    assert student(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_measure_reports_every_field(task: Task, onnx_mlp: Path, tmp_path: Path) -> None:
    art = run("quantize-dynamic", onnx_art(onnx_mlp), PassContext(tmp_path))
    r = measure(art, task.evaluation(), FAST)
    assert r["size_bytes"] == art.path.stat().st_size and r["parameters"] > 0 and 0 <= r["sparsity"] < 1
    assert r["load_ms"] > 0 and r["metric"]["name"] == "accuracy" and 0.5 < r["metric"]["value"] <= 1
    for key in ("batch_1", "batch_8"):
        lat = r["latency"][key]
        assert lat["p50_ms"] > 0 and lat["p99_ms"] >= lat["p50_ms"] and lat["n"] >= 5
    assert r["throughput"]["concurrency"] == 2 and r["throughput"]["samples_per_s"] > 0
    assert r["quantization"]["quantized_ops"] and "fp32_ops" in r["quantization"]


@pytest.mark.skipif(
    importlib.util.find_spec("tvm") is None,
    reason="TVM is not installed: pip install apache-tvm==0.27.0.post1",
)
def test_tvm_compiles_and_serves_through_the_runtime_interface(task: Task, onnx_mlp: Path, tmp_path: Path) -> None:
    from aiaas.optimize.tvm_backend import TvmModel
    from aiaas.runtime.base import RuntimeContext
    from aiaas.types.model_config import ModelConfig

    art = run("tvm", onnx_art(onnx_mlp), PassContext(tmp_path))
    assert art.kind == "tvm" and art.details["tvm"]["tuned"] is False and "llvm" in art.details["tvm"]["target"]
    version = tmp_path / "v1"
    version.mkdir()
    (version / "model.so").write_bytes(art.path.read_bytes())
    (version / "tvm.json").write_text(art.path.with_suffix(".json").read_text())
    model = TvmModel(ModelConfig(backend="tvm", max_batch_size=8), version, RuntimeContext())
    model.load()
    out = model.run({"x": task.x_te[:5]}, {})
    np.testing.assert_allclose(out["logits"], ort_out(onnx_mlp, task.x_te[:5]), atol=1e-4)
    inputs, outputs = model.signature()
    assert inputs[0].name == "x" and inputs[0].shape == [-1, 16] and outputs[0].name == "logits"
    model.unload()
