"""The ``tvm`` backend: a tiny ONNX MLP compiled by the optimize pass, registered and served through V2; without
apache-tvm the model is UNAVAILABLE with the install command; the signature file is checked."""

from __future__ import annotations

import importlib.util
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from models import mlp, mlp_reference

from aiaas.registry import ModelRepository
from aiaas.runtime import backend_class
from aiaas.runtime.tvm import TVM_INSTALL, TvmModel, config_from_sidecar, read_sidecar
from aiaas.server.app import create_app

HAS_TVM = importlib.util.find_spec("tvm") is not None
AUTH = {"Authorization": "Bearer test-admin-key"}


def sidecar(path: Path, batch: int = -1, dtype: str = "float32") -> Path:
    io = {
        "inputs": [{"name": "x", "dtype": dtype, "shape": [batch, 4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [batch, 3]}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(io))
    return path


def infer(c: TestClient, name: str, x: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    r = c.post(f"/v2/models/{name}/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["name"] == "y" and out["shape"] == [x.shape[0], 3]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def index(c: TestClient) -> dict[str, dict]:
    return {row["name"]: row for row in c.post("/v2/repository/index", headers=AUTH).json()}


def test_tvm_is_a_registered_backend() -> None:
    assert backend_class("tvm") is TvmModel


def test_config_from_the_signature_file(tmp_path: Path) -> None:
    config = config_from_sidecar(sidecar(tmp_path / "a.json"))
    assert config.backend == "tvm" and config.max_batch_size == 64
    assert [(t.name, t.datatype, t.shape) for t in config.inputs] == [("x", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, t.shape) for t in config.outputs] == [("y", "FP32", [-1, 3])]
    assert config_from_sidecar(sidecar(tmp_path / "b.json", batch=2)).max_batch_size == 0  # fixed batch axis
    with pytest.raises(ValueError, match="dtype 'complex64', which aiaas cannot serve"):
        read_sidecar(sidecar(tmp_path / "c.json", dtype="complex64"))
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tvm signature file"):
        read_sidecar(tmp_path / "d.json")
    with pytest.raises(ValueError, match=r"needs model.so and tvm.json"):
        read_sidecar(tmp_path / "missing.json")


def test_without_tvm_the_model_is_unavailable_with_the_install_command(
    repo: ModelRepository, make_settings, mlp_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tvm", None)  # `import tvm` raises ImportError
    src = tmp_path / "tvm-src"
    src.mkdir()
    (src / "model.so").write_bytes(b"\x7fELF not really")
    repo.add_version("compiled", {"model.so": src / "model.so", "tvm.json": sidecar(src / "tvm.json")})
    repo.write_config("compiled", config_from_sidecar(src / "tvm.json"))
    with TestClient(create_app(make_settings())) as c:
        rows = index(c)
        assert rows["compiled"]["state"] == "UNAVAILABLE"
        assert TVM_INSTALL in rows["compiled"]["reason"] and "apache-tvm" in rows["compiled"]["reason"]
        assert rows[mlp_model]["state"] == "READY"  # the others keep serving
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}]}
        r = c.post("/v2/models/compiled/infer", json=body, headers=AUTH)
        assert r.status_code == 503 and "apache-tvm" in r.text, r.text


@pytest.mark.skipif(not HAS_TVM, reason=f"apache-tvm is not installed: {TVM_INSTALL}")
def test_compiled_by_the_pass_registered_and_served_through_v2(
    repo: ModelRepository, make_settings, tmp_path: Path
) -> None:
    from aiaas.optimize.artifacts import Artifact
    from aiaas.optimize.passes import PassContext, run_pass
    from aiaas.optimize.pipeline import Candidate, register
    from aiaas.optimize.plan import plan

    (spec,) = plan(["tvm"])
    (tmp_path / "work").mkdir()
    art = run_pass(spec, Artifact("onnx", path=mlp(tmp_path / "mlp.onnx")), PassContext(tmp_path / "work"))
    assert art.kind == "tvm" and art.path is not None and art.path.suffix == ".so"
    chosen = Candidate("tvm", [spec], art, measurement={"metric": {"name": "accuracy", "value": 1.0}, "size_bytes": 1})
    report = {"candidates": [{"name": "tvm", "decision": "chosen"}]}
    assert register(repo, "compiled", chosen, report) == 1
    vdir = repo.version_dir("compiled", 1)
    assert {p.name for p in vdir.iterdir()} >= {"model.so", "tvm.json"}
    config = yaml.safe_load((repo.path("compiled") / "model.yaml").read_text())
    assert config["backend"] == "tvm" and config["max_batch_size"] == 64
    assert config["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert config["card"]["extra"]["optimization"]["version"] == 1

    with TestClient(create_app(make_settings())) as c:
        assert index(c)["compiled"]["state"] == "READY"
        meta = c.get("/v2/models/compiled", headers=AUTH).json()
        assert meta["platform"] == "tvm" and meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        rng = np.random.default_rng(3)
        for n in (1, 5, 17):  # the compiled library keeps the symbolic batch axis: any batch size runs
            x = rng.standard_normal((n, 4)).astype(np.float32)
            np.testing.assert_allclose(infer(c, "compiled", x), mlp_reference(x), rtol=1e-5, atol=1e-5)
        xs = [rng.standard_normal((n, 4)).astype(np.float32) for n in (1, 2, 3, 1, 4, 1, 2, 3)]
        with ThreadPoolExecutor(8) as pool:  # concurrent requests: the batcher may concatenate them
            outs = list(pool.map(lambda x: infer(c, "compiled", x), xs))
        for x, y in zip(xs, outs, strict=True):
            np.testing.assert_allclose(y, mlp_reference(x), rtol=1e-5, atol=1e-5)
