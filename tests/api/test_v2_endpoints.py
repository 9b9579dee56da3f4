"""Every KServe V2 endpoint in-process: health, metadata, readiness, inference (JSON and binary), repository,
statistics. Values are checked against a numpy reference, not just status codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from models import mlp, mlp_reference
from v2kit import AUTH, binary_request, decode_response, json_input

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx

X = np.arange(8, dtype=np.float32).reshape(2, 4) / 10


def infer(c: TestClient, model: str, doc: dict, path_version: str | None = None):
    path = f"/v2/models/{model}" + (f"/versions/{path_version}" if path_version else "") + "/infer"
    return c.post(path, json=doc, headers=AUTH)


# -- health and metadata -------------------------------------------------------------------------
def test_health_is_open_and_answers_json(zoo: TestClient) -> None:
    assert zoo.get("/v2/health/live").json() == {"live": True}
    r = zoo.get("/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}


def test_health_ready_is_503_until_startup_finished(make_settings) -> None:
    from aiaas.server.app import create_app

    c = TestClient(create_app(make_settings()))  # not entered: the lifespan (model loading) has not run
    r = c.get("/v2/health/ready")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert c.get("/v2/health/live").status_code == 200


def test_server_metadata_lists_the_extensions(zoo: TestClient) -> None:
    doc = zoo.get("/v2", headers=AUTH).json()
    assert doc["name"] == "aiaas" and doc["version"]
    assert {"binary_tensor_data", "model_repository", "statistics"} <= set(doc["extensions"])


@pytest.mark.parametrize("path", ["/v2/models/mlp", "/v2/models/mlp/versions/1"])
def test_model_metadata(zoo: TestClient, path: str) -> None:
    doc = zoo.get(path, headers=AUTH).json()
    assert doc["name"] == "mlp"
    assert doc["versions"] == ["1"]
    assert doc["platform"] == "onnxruntime_onnx"
    assert doc["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert doc["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    assert doc["parameters"]["max_batch_size"] == 32


def test_metadata_of_python_and_pipeline_models(zoo: TestClient) -> None:
    upper = zoo.get("/v2/models/upper", headers=AUTH).json()
    assert upper["platform"] == "python"
    assert upper["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    pipe = zoo.get("/v2/models/pipe", headers=AUTH).json()
    assert pipe["platform"] == "ensemble" and pipe["versions"] == ["1"]


@pytest.mark.parametrize("path", ["/v2/models/mlp/ready", "/v2/models/mlp/versions/1/ready"])
def test_model_ready(zoo: TestClient, path: str) -> None:
    r = zoo.get(path, headers=AUTH)
    assert r.status_code == 200 and r.json()["ready"] is True


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope/ready",
        "/v2/models/mlp/versions/7/ready",
        "/v2/models/nope",
        "/v2/models/mlp/versions/7",
    ],
)
def test_ready_and_metadata_of_unknown_model_or_version_is_404(zoo: TestClient, path: str) -> None:
    r = zoo.get(path, headers=AUTH)
    assert r.status_code == 404
    assert ("nope" in r.json()["error"]) or ("7" in r.json()["error"])


# -- inference ----------------------------------------------------------------------------------
def test_infer_json_matches_the_reference(zoo: TestClient) -> None:
    r = infer(zoo, "mlp", {"id": "req-42", "inputs": [json_input("x", X)]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["id"] == "req-42"
    assert doc["model_name"] == "mlp" and doc["model_version"] == "1"
    (out,) = doc["outputs"]
    assert out["name"] == "y" and out["datatype"] == "FP32" and out["shape"] == [2, 3]
    np.testing.assert_allclose(np.array(out["data"]).reshape(2, 3), mlp_reference(X), rtol=1e-5)


def test_infer_without_id_answers_without_id(zoo: TestClient) -> None:
    assert "id" not in infer(zoo, "mlp", {"inputs": [json_input("x", X)]}).json()


def test_infer_on_versioned_path(zoo: TestClient) -> None:
    r = infer(zoo, "mlp", {"inputs": [json_input("x", X)]}, path_version="1")
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    r = infer(zoo, "mlp", {"inputs": [json_input("x", X)]}, path_version="3")
    assert r.status_code == 404 and "version 3" in r.json()["error"]


def test_infer_accepts_nested_json_data(zoo: TestClient) -> None:
    doc = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.tolist()}]}
    r = infer(zoo, "mlp", doc)
    np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"]).reshape(2, 3), mlp_reference(X), rtol=1e-5)


def test_infer_binary_in_and_out(zoo: TestClient) -> None:
    body, headers = binary_request({"x": X}, outputs=[{"name": "y", "parameters": {"binary_data": True}}], id="b1")
    r = zoo.post("/v2/models/mlp/infer", content=body, headers={**AUTH, **headers})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    head, out = decode_response(r.content, r.headers["inference-header-content-length"])
    assert head["id"] == "b1"
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 2 * 3 * 4
    np.testing.assert_allclose(out["y"], mlp_reference(X), rtol=1e-5)


def test_binary_input_json_output(zoo: TestClient) -> None:
    body, headers = binary_request({"x": X})
    r = zoo.post("/v2/models/mlp/infer", content=body, headers={**AUTH, **headers})
    assert r.status_code == 200 and "inference-header-content-length" not in r.headers
    np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"]).reshape(2, 3), mlp_reference(X), rtol=1e-5)


def test_binary_data_output_parameter_makes_every_output_binary(zoo: TestClient) -> None:
    text = np.array([b"ab", b"xyz"], dtype=object)
    r = infer(zoo, "upper", {"inputs": [json_input("text", text)], "parameters": {"binary_data_output": True}})
    head, out = decode_response(r.content, r.headers["inference-header-content-length"])
    assert all("binary_data_size" in o["parameters"] for o in head["outputs"])
    assert out["upper"].tolist() == [b"AB!", b"XYZ!"]
    assert out["length"].tolist() == [2, 3]


def test_requested_outputs_mix_binary_and_json(zoo: TestClient) -> None:
    text = np.array([b"ab"], dtype=object)
    doc = {
        "inputs": [json_input("text", text)],
        "outputs": [{"name": "length", "parameters": {"binary_data": True}}, {"name": "upper"}],
    }
    r = infer(zoo, "upper", doc)
    head, out = decode_response(r.content, r.headers["inference-header-content-length"])
    assert [o["name"] for o in head["outputs"]] == ["length", "upper"]  # only those asked for, in that order
    assert "data" in head["outputs"][1] and head["outputs"][1]["data"] == ["AB!"]
    assert out["length"].tolist() == [2]


def test_requested_output_subset(zoo: TestClient) -> None:
    r = infer(
        zoo,
        "upper",
        {"inputs": [json_input("text", np.array([b"q"], dtype=object))], "outputs": [{"name": "length"}]},
    )
    assert [o["name"] for o in r.json()["outputs"]] == ["length"]


def test_parameters_reach_the_model_but_protocol_parameters_do_not(zoo: TestClient) -> None:
    doc = {
        "inputs": [json_input("text", np.array([b"a"], dtype=object))],
        "parameters": {"suffix": "?", "binary_data_output": False, "timeout": 5},
    }
    outputs = {o["name"]: o["data"] for o in infer(zoo, "upper", doc).json()["outputs"]}
    assert outputs["upper"] == ["A?"]
    assert json.loads(outputs["params"][0]) == ["suffix"]


def test_zero_row_batch(zoo: TestClient) -> None:
    r = infer(zoo, "mlp", {"inputs": [{"name": "x", "shape": [0, 4], "datatype": "FP32", "data": []}]})
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [0, 3]


# -- repository extension ------------------------------------------------------------------------
def _index(c: TestClient, body: dict | None = None) -> dict[tuple[str, str], dict]:
    r = (
        c.post("/v2/repository/index", json=body, headers=AUTH)
        if body is not None
        else c.post("/v2/repository/index", headers=AUTH)
    )
    assert r.status_code == 200, r.text
    return {(row["name"], row["version"]): row for row in r.json()}


def test_repository_index_lists_every_model_with_state(zoo: TestClient) -> None:
    rows = _index(zoo)
    for name in ("mlp", "upper", "double", "triple", "pipe", "badpipe"):
        assert rows[(name, "1")]["state"] == "READY"
    assert rows[("broken", "")]["state"] == "UNAVAILABLE"
    assert rows[("corrupt", "1")]["state"] == "UNAVAILABLE"


def test_repository_index_ready_only(zoo: TestClient) -> None:
    rows = _index(zoo, {"ready": True})
    assert all(r["state"] == "READY" for r in rows.values())
    assert ("mlp", "1") in rows
    assert not any(name in ("broken", "corrupt") for name, _ in rows)
    assert len(_index(zoo, {"ready": False})) > len(rows)


def test_unload_then_load(fresh) -> None:
    c = fresh()
    doc = {"inputs": [json_input("x", X)]}
    assert c.post("/v2/repository/models/mlp/unload", headers=AUTH).status_code == 200
    r = c.get("/v2/models/mlp/ready", headers=AUTH)
    assert r.status_code == 503 and r.json()["error"]
    r = infer(c, "mlp", doc)
    assert r.status_code == 503 and "not ready" in r.json()["error"]
    assert r.headers.get("retry-after")
    assert _index(c)[("mlp", "")]["state"] == "UNAVAILABLE"
    assert c.post("/v2/repository/models/mlp/unload", headers=AUTH).status_code == 200  # idempotent

    assert c.post("/v2/repository/models/mlp/load", json={}, headers=AUTH).status_code == 200
    assert c.get("/v2/models/mlp/ready", headers=AUTH).status_code == 200
    assert infer(c, "mlp", doc).status_code == 200
    assert _index(c)[("mlp", "1")]["state"] == "READY"


def test_unloaded_model_versioned_paths_are_503_but_unknown_versions_stay_404(fresh) -> None:
    c = fresh()
    assert c.post("/v2/repository/models/mlp/unload", headers=AUTH).status_code == 200
    doc = {"inputs": [json_input("x", X)]}
    for r in (c.get("/v2/models/mlp/versions/1/ready", headers=AUTH), infer(c, "mlp", doc, path_version="1")):
        assert r.status_code == 503 and "not" in r.json()["error"], r.text
    assert c.get("/v2/models/mlp/versions/2/ready", headers=AUTH).status_code == 404
    assert infer(c, "mlp", doc, path_version="2").status_code == 404


def test_version_outside_the_policy_is_404_while_the_model_serves(fresh, tmp_path) -> None:
    c = fresh()
    import_onnx(ModelRepository(tmp_path / "home" / "models"), mlp(tmp_path / "v2" / "mlp.onnx"), "mlp")
    assert c.post("/v2/repository/models/mlp/load", headers=AUTH).status_code == 200
    assert c.get("/v2/models/mlp/versions/2/ready", headers=AUTH).status_code == 200
    assert c.get("/v2/models/mlp/versions/1/ready", headers=AUTH).status_code == 404  # default policy: latest


def test_load_picks_up_a_new_version(fresh, tmp_path) -> None:
    c = fresh()
    repo = ModelRepository(tmp_path / "home" / "models")
    import_onnx(repo, mlp(tmp_path / "v2" / "mlp.onnx", seed=7), "mlp")  # version 2, other weights
    assert c.post("/v2/repository/models/mlp/load", headers=AUTH).status_code == 200
    r = infer(c, "mlp", {"inputs": [json_input("x", X)]})
    assert r.json()["model_version"] == "2"
    np.testing.assert_allclose(
        np.array(r.json()["outputs"][0]["data"]).reshape(2, 3), mlp_reference(X, seed=7), rtol=1e-5
    )
    assert c.get("/v2/models/mlp", headers=AUTH).json()["versions"] == ["2"]


def test_load_and_unload_unknown_model_is_404(zoo: TestClient) -> None:
    for action in ("load", "unload"):
        r = zoo.post(f"/v2/repository/models/nope/{action}", headers=AUTH)
        assert r.status_code == 404 and "nope" in r.json()["error"]


def test_loading_a_broken_model_says_why(zoo: TestClient) -> None:
    r = zoo.post("/v2/repository/models/corrupt/load", headers=AUTH)
    assert r.status_code == 400
    assert "corrupt" in r.json()["error"] and "onnxruntime cannot load" in r.json()["error"]


# -- statistics extension ------------------------------------------------------------------------
def test_statistics_count_requests(fresh) -> None:
    c = fresh()
    for _ in range(3):
        assert infer(c, "mlp", {"inputs": [json_input("x", X)]}).status_code == 200
    assert infer(c, "mlp", {"inputs": [json_input("x", X.astype(np.float64))]}).status_code == 400
    (row,) = c.get("/v2/models/mlp/stats", headers=AUTH).json()["model_stats"]
    assert row["name"] == "mlp" and row["version"] == "1"
    assert row["inference_count"] == 6  # rows
    assert 1 <= row["execution_count"] <= 3
    stats = row["inference_stats"]
    assert stats["success"]["count"] == 3 and stats["success"]["ns"] > 0
    assert stats["queue"]["count"] == 3
    assert sum(b["compute_infer"]["count"] for b in row["batch_stats"]) == row["execution_count"]
    assert row["last_inference"] > 0

    (same,) = c.get("/v2/models/mlp/versions/1/stats", headers=AUTH).json()["model_stats"]
    assert same["inference_count"] == 6
    every = {r["name"] for r in c.get("/v2/models/stats", headers=AUTH).json()["model_stats"]}
    assert {"mlp", "upper", "pipe"} <= every


@pytest.mark.parametrize("path", ["/v2/models/nope/stats", "/v2/models/mlp/versions/9/stats"])
def test_statistics_of_unknown_model_or_version_is_404(zoo: TestClient, path: str) -> None:
    assert zoo.get(path, headers=AUTH).status_code == 404
