"""Runtime backends: onnx (signature, runtime options, broken files), python (class lookup), pipeline."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from models import identity, mlp, mlp_reference
from onnx import TensorProto

from aiaas.errors import InferenceError, InvalidInput
from aiaas.runtime import Model, RuntimeContext, Tensors, backend_class, predict_blocking
from aiaas.runtime.onnx import OnnxModel
from aiaas.runtime.pipeline import PipelineModel
from aiaas.runtime.python import PythonModel
from aiaas.types.model_config import ModelConfig


def onnx_config(**kw: Any) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "backend": "onnx", **kw})


# -- onnx -------------------------------------------------------------------------------------------
def test_backend_registry() -> None:
    assert backend_class("onnx") is OnnxModel
    assert backend_class("python") is PythonModel
    assert backend_class("pipeline") is PipelineModel
    with pytest.raises(ValueError, match="unknown backend 'torchscript'"):
        backend_class("torchscript")


def test_onnx_signature_and_predict(tmp_path: Path) -> None:
    mlp(tmp_path / "1" / "model.onnx")
    m = OnnxModel(onnx_config(), tmp_path / "1", RuntimeContext())
    m.load()
    inputs, outputs = m.signature()
    assert [(t.name, t.datatype, t.shape) for t in inputs] == [("x", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, t.shape) for t in outputs] == [("y", "FP32", [-1, 3])]
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(m.run({"x": x}, {})["y"], mlp_reference(x), rtol=1e-5, atol=1e-5)
    m.unload()
    with pytest.raises(RuntimeError, match="not loaded"):
        m.run({"x": x}, {})


def test_onnx_runtime_options_are_applied(tmp_path: Path) -> None:
    mlp(tmp_path / "1" / "model.onnx")
    cfg = onnx_config(
        runtime={
            "intra_op_threads": 1,
            "inter_op_threads": 2,
            "graph_optimization_level": "disable",
            "execution_mode": "parallel",
        }
    )
    m = OnnxModel(cfg, tmp_path / "1", RuntimeContext(default_intra_op_threads=2))
    m.load()
    opts = m.session.get_session_options()  # type: ignore[union-attr]
    assert opts.intra_op_num_threads == 1  # the model's own setting wins over the server default
    assert opts.inter_op_num_threads == 2  # (with 1 inter-op thread onnxruntime itself falls back to sequential)
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL

    m2 = OnnxModel(onnx_config(), tmp_path / "1", RuntimeContext(default_intra_op_threads=2))
    m2.load()
    opts2 = m2.session.get_session_options()  # type: ignore[union-attr]
    assert opts2.intra_op_num_threads == 2  # server default when the model does not say
    assert opts2.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_onnx_bytes_tensors(tmp_path: Path) -> None:
    identity(tmp_path / "1" / "model.onnx", TensorProto.STRING)
    m = OnnxModel(onnx_config(), tmp_path / "1", RuntimeContext())
    m.load()
    assert m.signature()[0][0].datatype == "BYTES"
    words = np.array([[b"caf\xc3\xa9", b"x"]], dtype=object)
    out = m.run({"inp": words}, {})["out"]
    assert [str(v) for v in out.reshape(-1)] == ["caf\u00e9", "x"]


def test_onnx_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    vdir = tmp_path / "1"
    vdir.mkdir()
    (vdir / "model.onnx").write_bytes(b"\x00garbage, not a protobuf")
    with pytest.raises(ValueError, match=r"onnxruntime cannot load model\.onnx"):
        OnnxModel(onnx_config(), vdir, RuntimeContext()).load()


def test_onnx_file_selection(tmp_path: Path) -> None:
    vdir = tmp_path / "1"
    vdir.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.onnx file"):
        OnnxModel(onnx_config(), vdir, RuntimeContext()).load()
    mlp(vdir / "a.onnx")
    identity(vdir / "b.onnx", TensorProto.FLOAT)
    with pytest.raises(FileNotFoundError, match=r"parameters\.file"):
        OnnxModel(onnx_config(), vdir, RuntimeContext()).load()
    m = OnnxModel(onnx_config(parameters={"file": "b.onnx"}), vdir, RuntimeContext())
    m.load()
    assert m.signature()[0][0].name == "inp"
    with pytest.raises(FileNotFoundError, match=r"c\.onnx"):
        OnnxModel(onnx_config(parameters={"file": "c.onnx"}), vdir, RuntimeContext()).load()


# -- python -----------------------------------------------------------------------------------------
USER_MODEL = """
from aiaas.runtime import Model

class Doubler(Model):
    def load(self):
        self.factor = float(self.config.parameters.get("factor", 2))

    def predict(self, inputs, parameters):
        return {"y": inputs["x"] * self.factor}

class NotAModel:
    pass

def function():
    return 1
"""


def py_config(cls: str, **params: Any) -> ModelConfig:
    return ModelConfig(name="py", backend="python", parameters={"class": cls, **params})


def test_python_class_from_file_in_version_dir(tmp_path: Path) -> None:
    vdir = tmp_path / "py" / "1"
    vdir.mkdir(parents=True)
    (vdir / "model.py").write_text(USER_MODEL)
    m = PythonModel(py_config("model.py:Doubler", factor=3), vdir, RuntimeContext())
    m.load()
    np.testing.assert_array_equal(asyncio.run(m.predict({"x": np.array([1.0, 2.0])}, {}))["y"], [3.0, 6.0])
    assert m.signature() is None


def test_python_class_from_file_in_model_dir(tmp_path: Path) -> None:
    vdir = tmp_path / "py" / "1"
    vdir.mkdir(parents=True)
    (vdir.parent / "shared.py").write_text(USER_MODEL)
    m = PythonModel(py_config("shared.py:Doubler"), vdir, RuntimeContext())
    m.load()
    assert asyncio.run(m.predict({"x": np.array([4.0])}, {}))["y"][0] == 8.0


def test_python_class_from_importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "site" / "userpkg_rt"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    m = PythonModel(py_config("userpkg_rt.models:Doubler"), tmp_path, RuntimeContext())
    m.load()
    assert asyncio.run(m.predict({"x": np.array([1.5])}, {}))["y"][0] == 3.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("model.py:NotAModel", "is not a subclass of aiaas.runtime.Model"),
        ("model.py:function", "is not a subclass of aiaas.runtime.Model"),
        ("model.py:Missing", "is not a subclass of aiaas.runtime.Model"),
        ("other.py:Doubler", "'other.py' not found"),
        ("../model.py:Doubler", "not found"),
        ("model.py", "must look like"),
        (":Doubler", "must look like"),
    ],
)
def test_python_bad_class_specs(tmp_path: Path, spec: str, message: str) -> None:
    vdir = tmp_path / "py" / "1"
    vdir.mkdir(parents=True)
    (vdir / "model.py").write_text(USER_MODEL)
    (tmp_path / "model.py").write_text(USER_MODEL)  # reachable only by escaping the model directory
    with pytest.raises(ValueError, match=message):
        PythonModel(py_config(spec), vdir, RuntimeContext())


def test_python_missing_module_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleNotFoundError):
        PythonModel(py_config("no_such_pkg_xyz.mod:Cls"), tmp_path, RuntimeContext())


def test_python_file_is_reread_for_a_new_load(tmp_path: Path) -> None:
    """Reloading a version picks up an edited model.py (the module is executed again, not cached)."""
    vdir = tmp_path / "py" / "1"
    vdir.mkdir(parents=True)
    (vdir / "model.py").write_text(USER_MODEL)
    a = PythonModel(py_config("model.py:Doubler"), vdir, RuntimeContext())
    (vdir / "model.py").write_text(USER_MODEL.replace("* self.factor", "* self.factor + 1"))
    b = PythonModel(py_config("model.py:Doubler"), vdir, RuntimeContext())
    a.load()
    b.load()
    x = {"x": np.array([1.0])}
    assert (predict_blocking(a, x, {})["y"][0], predict_blocking(b, x, {})["y"][0]) == (2.0, 3.0)


# -- pipeline ---------------------------------------------------------------------------------------
def pipe_config(steps: list[dict[str, Any]], outputs: dict[str, str], inputs: list[dict] | None = None) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "pipe",
            "backend": "pipeline",
            "inputs": inputs or [],
            "pipeline": {"steps": steps, "outputs": outputs},
        }
    )


class FakeServer:
    """Stands in for the data plane: 'double' and 'plus1' models, plus ones that fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, list[str]]] = []

    async def infer(self, model: str, version: int | None, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        self.calls.append((model, version, sorted(inputs)))
        await asyncio.sleep(0)
        if model == "double":
            return {"y": inputs["x"] * 2}
        if model == "plus1":
            return {"y": inputs["x"] + 1, "sum": inputs["x"] + inputs.get("z", 0)}
        if model == "rejects":
            raise InvalidInput("input 'x' must be FP64")
        raise ZeroDivisionError("model exploded")


CHAIN = [
    {"name": "a", "model": "double", "inputs": {"x": "input"}},
    {"name": "b", "model": "plus1", "version": 3, "inputs": {"x": "a.y", "z": "input"}},
]


def load_pipe(cfg: ModelConfig, server: FakeServer | None = None) -> PipelineModel:
    m = PipelineModel(cfg, Path("."), RuntimeContext(infer=(server or FakeServer()).infer))
    m.load()
    return m


def test_pipeline_chains_two_models() -> None:
    server = FakeServer()
    m = load_pipe(pipe_config(CHAIN, {"out": "b.y", "mid": "a.y", "total": "b.sum"}), server)
    assert m.blocking() is None and PipelineModel.on_loop(m.config, Path("."))
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    out = asyncio.run(m.predict({"input": x}, {}))
    np.testing.assert_array_equal(out["mid"], x * 2)
    np.testing.assert_array_equal(out["out"], x * 2 + 1)
    np.testing.assert_array_equal(out["total"], x * 2 + x)
    assert server.calls == [("double", None, ["x"]), ("plus1", 3, ["x", "z"])]


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [("rejects", InvalidInput, 400), ("explodes", InferenceError, 500)],
)
def test_pipeline_failing_step_is_named(model: str, error: type, status: int) -> None:
    steps = [CHAIN[0], {"name": "second", "model": model, "inputs": {"x": "a.y"}}]
    m = load_pipe(pipe_config(steps, {"out": "second.y"}))
    with pytest.raises(error) as info:
        asyncio.run(m.predict({"input": np.ones(2)}, {}))
    assert info.value.status_code == status
    assert f"pipeline step 'second' (model '{model}')" in info.value.message


def test_pipeline_step_output_that_does_not_exist() -> None:
    steps = [CHAIN[0], {"name": "b", "model": "plus1", "inputs": {"x": "a.nope"}}]
    m = load_pipe(pipe_config(steps, {"out": "b.y"}))
    with pytest.raises(InferenceError, match=r"pipeline step 'b': input 'x' needs 'a\.nope'"):
        asyncio.run(m.predict({"input": np.ones(2)}, {}))


def test_pipeline_output_that_no_step_produced_is_an_error() -> None:
    m = load_pipe(pipe_config(CHAIN, {"out": "b.y", "extra": "b.missing"}))
    with pytest.raises(InferenceError, match=r"pipeline output 'extra'.*'b\.missing'"):
        asyncio.run(m.predict({"input": np.ones(2)}, {}))


@pytest.mark.parametrize(
    ("steps", "outputs", "inputs", "message"),
    [
        (list(reversed(CHAIN)), {"out": "b.y"}, None, r"step 'b' input 'x' uses 'a\.y' before that step runs"),
        ([{"name": "a", "model": "double", "inputs": {"x": "a.y"}}], {"out": "a.y"}, None, "before that step runs"),
        (CHAIN, {"out": "c.y"}, None, r"pipeline output 'out': 'c\.y' names no step"),
        (
            CHAIN,
            {"out": "b.y"},
            [{"name": "other", "datatype": "FP32", "shape": [-1]}],
            "'input' is not a pipeline input",
        ),
        ([CHAIN[0], {**CHAIN[0], "inputs": {"x": "a.y"}}], {"out": "a.y"}, None, "step name 'a' is used twice"),
    ],
    ids=["later-step", "self", "output-no-step", "unknown-input", "duplicate-step"],
)
def test_pipeline_bad_configs_are_refused_at_load(
    steps: list[dict], outputs: dict[str, str], inputs: list[dict] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_pipe(pipe_config(steps, outputs, inputs))


def test_pipeline_needs_the_server() -> None:
    m = PipelineModel(pipe_config(CHAIN, {"out": "b.y"}), Path("."), RuntimeContext())
    with pytest.raises(ValueError, match="data plane"):
        m.load()


def test_model_interface_default_stream() -> None:
    class Echo(Model):
        def load(self) -> None:
            pass

        async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
            return dict(inputs)

    async def collect() -> list[Tensors]:
        return [
            chunk
            async for chunk in Echo(onnx_config(), Path("."), RuntimeContext()).predict_stream({"a": np.ones(1)}, {})
        ]

    (only,) = asyncio.run(collect())
    assert list(only) == ["a"]


def test_user_model_file_is_dedented_source() -> None:
    assert textwrap.dedent(USER_MODEL) == USER_MODEL  # guards the fixtures above from indentation mistakes
