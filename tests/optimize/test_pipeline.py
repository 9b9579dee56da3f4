"""optimize(): baseline vs candidates in one process, the gate, and registration of an accepted candidate."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from aiaas.errors import Conflict, InvalidInput
from aiaas.optimize import Criterion, Evaluation, OnnxSource, optimize
from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.runtime.base import RuntimeContext
from aiaas.runtime.onnx import OnnxModel

from .conftest import FAST, EncoderTask, Task


def test_harmful_pruning_is_rejected_with_a_report_that_says_why(task: Task, repo: ModelRepository) -> None:
    events: list[tuple[float, str]] = []
    result = optimize(
        task.source(),
        [{"name": "prune", "amount": 0.95}],
        task.evaluation(),
        workload=FAST,
        repository=repo,
        model="toy",
        progress=lambda f, m: events.append((f, m)),
    )
    assert not result.accepted and result.version is None
    assert result.reason.startswith("prune: rejected: accuracy ")
    assert "relative > 1% allowed" in result.reason
    cand = result.report["candidates"][0]
    assert cand["decision"]["accepted"] is False and cand["decision"]["relative_loss"] > 0.01
    assert abs(cand["details"]["prune"]["weight_sparsity"] - 0.95) < 0.01
    assert not repo.exists("toy"), "a rejected candidate must not become a version"
    assert events[0][0] == 0.0 and events[-1][0] == 1.0
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(events)), "progress went backwards"


def test_accepted_candidate_becomes_a_served_version_with_its_report(
    task: Task, onnx_mlp: Path, repo: ModelRepository
) -> None:
    import_onnx(repo, onnx_mlp, "toy", max_batch_size=16)
    src = OnnxSource(repo.version_dir("toy", 1) / "model.onnx", model="toy", version=1)
    result = optimize(
        src,
        ["graph", "quantize-dynamic"],
        task.evaluation(),
        Criterion(max_relative_loss=0.02),
        workload=FAST,
        repository=repo,
    )
    assert result.accepted, result.reason
    assert result.version == 2 and result.model == "toy"
    entry = repo.read("toy")
    assert entry.error is None and entry.versions == [1, 2]
    opt = entry.config.card.extra["optimization"]
    assert opt["version"] == 2 and opt["chosen"] == "graph+quantize-dynamic"
    assert opt["source"]["model"] == "toy" and len(opt["source"]["sha256"]) == 64
    assert entry.config.card.metrics["accuracy"] == result.report["candidates"][0]["measurement"]["metric"]["value"]
    assert entry.config.max_batch_size == 16, "the model's serving config must survive"
    saved = json.loads((repo.version_dir("toy", 2) / "optimization.json").read_text())
    assert saved["candidates"][0]["details"]["quantize-dynamic"]["quantized_ops"]
    model = OnnxModel(entry.config, repo.version_dir("toy", 2), RuntimeContext())
    model.load()
    out = model.run({"x": task.x_te[:4]}, {})
    assert out["logits"].shape == (4, 4)


def test_report_has_every_field(task: Task, onnx_mlp: Path) -> None:
    result = optimize(
        OnnxSource(onnx_mlp, recipe="tabular"),
        [["quantize-dynamic"], ["quantize-static"], ["graph"]],
        task.evaluation(),
        workload=FAST,
    )
    r = result.report
    assert r["source"]["recipe"] == "tabular" and r["source"]["kind"] == "onnx"
    assert set(r["environment"]["tools"]) >= {"onnxruntime", "onnx", "torch", "apache-tvm"}
    assert r["environment"]["tools"]["onnxruntime"]
    assert set(r["environment"]["cpu"]["flags"]) >= {"avx512", "vnni", "amx"} and r["environment"]["cpu"]["model"]
    base = r["baseline"]
    for key in ("size_bytes", "parameters", "sparsity", "load_ms", "latency", "throughput", "metric"):
        assert key in base, key
    assert set(base["latency"]) == {"batch_1", "batch_8"}
    assert [c["name"] for c in r["candidates"]] == ["quantize-dynamic", "quantize-static", "graph"]
    for c in r["candidates"]:
        assert set(c["decision"]) >= {"accepted", "reason", "relative_loss", "absolute_delta", "speedup"}
    q = r["candidates"][1]["measurement"]["quantization"]
    assert q["op_types"]["QuantizeLinear"] > 0 and "fp32_ops" in q
    assert r["candidates"][1]["details"]["quantize-static"]["mode"] == "static"
    assert r["pareto"] and set(r["pareto"]) <= {"baseline", "quantize-dynamic", "quantize-static", "graph"}
    assert result.chosen in [c["name"] for c in r["candidates"] if c["decision"]["accepted"]]


def test_quantize_dynamic_on_a_small_transformer_keeps_accuracy(encoder_task: EncoderTask, tmp_path: Path) -> None:
    ev = encoder_task.evaluation()
    result = optimize(OnnxSource(encoder_task.onnx(tmp_path)), ["quantize-dynamic"], ev, workload=FAST)
    base = result.report["baseline"]["metric"]["value"]
    cand = result.report["candidates"][0]["measurement"]["metric"]["value"]
    assert base > 0.6, "the encoder did not learn the task; the comparison would mean nothing"
    assert (base - cand) / base <= 0.01 and result.accepted, result.reason


def test_torch_source_prune_with_fine_tuning_is_accepted(task: Task) -> None:
    passes = [
        {"name": "prune", "amount": 0.5, "fine_tune_epochs": 3, "learning_rate": 1e-3},
        {"name": "export-onnx", "exporter": "torchscript"},
    ]
    result = optimize(task.source(), passes, task.evaluation(), Criterion(max_relative_loss=0.01), workload=FAST)
    assert result.accepted, result.reason
    cand = result.report["candidates"][0]
    assert cand["measurement"]["weight_sparsity"] > 0.4  # zeros survive export
    assert result.report["baseline"]["details"]["export-onnx"]["exporter"] == "torchscript"


def test_a_failing_pass_fails_its_candidate_only(task: Task, onnx_mlp: Path, monkeypatch) -> None:
    from aiaas.optimize import quantize

    def boom(*a, **k):
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(quantize, "quantize_static", boom)
    result = optimize(OnnxSource(onnx_mlp), [["quantize-static"], ["graph"]], task.evaluation(), workload=FAST)
    failed, ok = result.report["candidates"]
    assert failed["error"] == "quantize-static: RuntimeError: quantizer crashed" and not failed["decision"]["accepted"]
    assert ok["decision"]["accepted"] and result.chosen == "graph"


def test_problems_are_refused_before_any_work(task: Task, onnx_mlp: Path, repo: ModelRepository) -> None:
    calls: list[str] = []
    ev_no_calib = Evaluation(inputs={"x": task.x_te}, target=task.y_te)
    with pytest.raises(InvalidInput, match="calibration set"):
        optimize(OnnxSource(onnx_mlp), ["quantize-static"], ev_no_calib, progress=lambda f, m: calls.append(m))
    with pytest.raises(InvalidInput, match="one precision change"):
        optimize(
            OnnxSource(onnx_mlp),
            [["graph"], ["quantize-dynamic", "quantize-static"]],
            task.evaluation(),
            progress=lambda f, m: calls.append(m),
        )
    src = task.source()
    src.student = None
    with pytest.raises(InvalidInput, match="student architecture"):
        optimize(src, ["distill"], task.evaluation(), progress=lambda f, m: calls.append(m))
    import_onnx(repo, onnx_mlp, "toy")
    import importlib.util

    if importlib.util.find_spec("tvm") is not None:
        with pytest.raises(Conflict, match="'onnx' backend"):
            optimize(
                OnnxSource(onnx_mlp),
                ["tvm"],
                task.evaluation(),
                repository=repo,
                model="toy",
                progress=lambda f, m: calls.append(m),
            )
    assert calls == [], "work started before the plan was checked"


def test_regression_metric_lower_is_better(task: Task, onnx_mlp: Path) -> None:
    target = np.asarray(task.x_te[:, 0], dtype=np.float32)  # any float target: rmse of logit 0 against it
    ev = Evaluation(inputs={"x": task.x_te}, target=target, metric="rmse")
    result = optimize(OnnxSource(onnx_mlp), ["graph"], ev, workload=FAST)
    assert result.report["baseline"]["metric"]["higher_is_better"] is False
    assert result.accepted
