"""Pass order validation: refused with a clear error before any work."""

from __future__ import annotations

import importlib.util

import pytest

from aiaas.errors import InvalidInput
from aiaas.optimize.plan import plan


def names(specs) -> list[str]:
    return [s.name for s in specs]


def test_onnx_orders_keep_the_users_order_and_fill_defaults() -> None:
    specs = plan(["graph", {"name": "quantize-dynamic", "per_channel": True}], source="onnx")
    assert names(specs) == ["graph", "quantize-dynamic"]
    assert specs[1].options["per_channel"] is True and specs[1].options["weight_type"] == "qint8"
    assert names(plan("graph,quantize-static")) == ["graph", "quantize-static"]


def test_torch_source_gets_an_implicit_export_after_its_torch_passes() -> None:
    specs = plan(["prune", "quantize-dynamic"], source="torch")
    assert names(specs) == ["prune", "export-onnx", "quantize-dynamic"]
    assert specs[1].implicit and not specs[0].implicit
    assert names(plan(["distill"], source="torch")) == ["distill", "export-onnx"]
    explicit = plan(["prune", {"name": "export-onnx", "exporter": "torchscript"}, "graph"], source="torch")
    assert not any(s.implicit for s in explicit) and explicit[1].options["exporter"] == "torchscript"


@pytest.mark.parametrize(
    ("passes", "source", "words"),
    [
        (
            ["export-onnx", "quantize-static", "prune"],
            "torch",
            ["'prune' after 'quantize-static'", "before 'export-onnx'"],
        ),
        (["quantize-dynamic", "prune"], "torch", ["'prune' after 'quantize-dynamic'", "put it first"]),
        (
            [{"name": "fp16", "force": True}, "quantize-dynamic"],
            "onnx",
            ["'quantize-dynamic' after 'fp16'", "one precision"],
        ),
        (["quantize-dynamic", "quantize-static"], "onnx", ["'quantize-static' after 'quantize-dynamic'"]),
        (["tvm", "graph"], "onnx", ["'tvm' must be the last pass", "followed by 'graph'"]),
        (["graph", "export-onnx"], "torch", ["'graph' before 'export-onnx'"]),
        (["export-onnx"], "onnx", ["needs a torch source"]),
        (["prune"], "onnx", ["'prune' works on the torch network"]),
        (["graph", "graph"], "onnx", ["appears twice"]),
        (["quantise-dynamic"], "onnx", ["unknown pass 'quantise-dynamic'", "quantize-dynamic"]),
        ([{"name": "quantize-static", "methd": "entropy"}], "onnx", ["unknown option(s) methd"]),
        (
            [{"name": "quantize-static", "method": "kl"}],
            "onnx",
            ["method must be one of minmax, entropy, percentile"],
        ),
        ([{"name": "prune", "amount": 1.5}], "torch", ["amount is the fraction"]),
        (["fp16"], "onnx", ["GPU targets", "force=true"]),
        ([], "onnx", ["no passes"]),
    ],
)
def test_bad_orders_are_refused_with_a_reason(passes: list, source: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as e:
        plan(passes, source=source)  # type: ignore[arg-type]
    for w in words:
        assert w in e.value.message, e.value.message


def test_fp16_is_allowed_for_gpu_or_when_forced() -> None:
    assert names(plan(["fp16"], target="gpu")) == ["fp16"]
    assert names(plan([{"name": "fp16", "force": True}])) == ["fp16"]


def test_tvm_missing_is_refused_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tvm" else real(name, *a))
    with pytest.raises(InvalidInput) as e:
        plan(["graph", "tvm"])
    assert "pip install apache-tvm==0.27.0.post1" in e.value.message
