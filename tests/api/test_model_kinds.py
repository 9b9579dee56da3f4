"""Broken models next to good ones, a pipeline served as one model, and a python-backend model, all through V2."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from v2kit import AUTH, binary_request, decode_response, json_input

X = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)


def index(c: TestClient) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in c.post("/v2/repository/index", headers=AUTH).json():
        rows.setdefault(row["name"], []).append(row)
    return rows


# -- broken models ----------------------------------------------------------------------------------
def test_invalid_model_yaml_is_unavailable_with_its_reason(zoo: TestClient) -> None:
    (row,) = index(zoo)["broken"]
    assert row["state"] == "UNAVAILABLE"
    assert "model.yaml is not valid YAML" in row["reason"]


def test_corrupt_onnx_is_unavailable_with_its_reason(zoo: TestClient) -> None:
    (row,) = index(zoo)["corrupt"]
    assert row["state"] == "UNAVAILABLE" and row["version"] == "1"
    assert "onnxruntime cannot load model.onnx" in row["reason"]


def test_config_errors_name_the_field(fresh, tmp_path) -> None:
    models = tmp_path / "home" / "models"
    (models / "typo" / "1").mkdir(parents=True)
    (models / "typo" / "model.yaml").write_text("backend: onnx\nmax_batch_sise: 4\n")
    (models / "nobackend" / "1").mkdir(parents=True)
    (models / "nobackend" / "model.yaml").write_text("inputs: []\n")
    (models / "noversions").mkdir()
    (models / "noversions" / "model.yaml").write_text("backend: onnx\n")
    c = fresh()
    rows = index(c)
    assert "max_batch_sise" in rows["typo"][0]["reason"]
    assert "backend" in rows["nobackend"][0]["reason"]
    assert "no version directories" in rows["noversions"][0]["reason"]
    assert all(rows[n][0]["state"] == "UNAVAILABLE" for n in ("typo", "nobackend", "noversions"))
    r = c.post("/v2/models/mlp/infer", json={"inputs": [json_input("x", np.ones((1, 4), np.float32))]}, headers=AUTH)
    assert r.status_code == 200  # the broken ones do not affect the others


def test_fixing_a_broken_model_and_loading_it_serves_it(fresh, tmp_path) -> None:
    c = fresh()
    (tmp_path / "home" / "models" / "broken").rename(tmp_path / "home" / "models" / "gone")
    models = tmp_path / "home" / "models"
    corrupt = models / "corrupt" / "1" / "model.onnx"
    corrupt.write_bytes((models / "double" / "1" / "model.onnx").read_bytes())
    assert c.post("/v2/repository/models/corrupt/load", headers=AUTH).status_code == 200
    (row,) = index(c)["corrupt"]
    assert row["state"] == "READY" and row["reason"] == ""
    r = c.post("/v2/models/corrupt/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH)
    assert r.json()["outputs"][0]["data"] == (X * 2).reshape(-1).tolist()


# -- pipeline -----------------------------------------------------------------------------------------
def test_pipeline_chains_two_models(zoo: TestClient) -> None:
    r = zoo.post("/v2/models/pipe/infer", json={"id": "p", "inputs": [json_input("x", X)]}, headers=AUTH)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_name"] == "pipe" and doc["id"] == "p"
    out = {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"]) for o in doc["outputs"]}
    np.testing.assert_allclose(out["y"], X * 6)
    np.testing.assert_allclose(out["doubled"], X * 2)


def test_pipeline_binary_and_requested_output(zoo: TestClient) -> None:
    body, headers = binary_request({"x": X}, outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    r = zoo.post("/v2/models/pipe/infer", content=body, headers={**AUTH, **headers})
    head, out = decode_response(r.content, r.headers["inference-header-content-length"])
    assert [o["name"] for o in head["outputs"]] == ["y"]
    np.testing.assert_allclose(out["y"], X * 6)


def test_pipeline_step_models_count_their_own_requests(fresh) -> None:
    c = fresh()
    c.post("/v2/models/pipe/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH)
    stats = {row["name"]: row for row in c.get("/v2/models/stats", headers=AUTH).json()["model_stats"]}
    assert stats["double"]["inference_stats"]["success"]["count"] == 1
    assert stats["triple"]["inference_stats"]["success"]["count"] == 1


def test_failing_pipeline_step_is_named(zoo: TestClient) -> None:
    r = zoo.post("/v2/models/badpipe/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH)
    assert r.status_code == 400
    msg = r.json()["error"]
    assert "'classify'" in msg and "'mlp'" in msg and "[-1, 4]" in msg


def test_pipeline_with_an_unloaded_step_names_it(fresh) -> None:
    c = fresh()
    assert c.post("/v2/repository/models/triple/unload", headers=AUTH).status_code == 200
    r = c.post("/v2/models/pipe/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH)
    assert r.status_code == 503
    assert "'thrice'" in r.json()["error"] and "'triple'" in r.json()["error"]
    assert c.post("/v2/repository/models/triple/load", headers=AUTH).status_code == 200
    assert c.post("/v2/models/pipe/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH).status_code == 200


def test_pipeline_error_message_does_not_leak_into_direct_calls(fresh) -> None:
    """The step-name prefix is added to the error the pipeline raises, not to errors other callers see."""
    c = fresh()
    c.post("/v2/models/badpipe/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH)
    r = c.post("/v2/models/mlp/infer", json={"inputs": [json_input("x", X)]}, headers=AUTH)
    assert r.status_code == 400 and "pipeline" not in r.json()["error"]


# -- python backend ------------------------------------------------------------------------------------
TEXT = np.array([b"hello", b"w", b"", "ünï".encode()], dtype=object)


def test_python_model_bytes_json(zoo: TestClient) -> None:
    r = zoo.post("/v2/models/upper/infer", json={"inputs": [json_input("text", TEXT)]}, headers=AUTH)
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert outs["upper"]["datatype"] == "BYTES" and outs["upper"]["shape"] == [4]
    assert outs["upper"]["data"] == ["HELLO!", "W!", "!", "ünï".encode().upper().decode() + "!"]
    assert outs["length"]["datatype"] == "INT32" and outs["length"]["data"] == [5, 1, 0, 5]


def test_python_model_bytes_binary(zoo: TestClient) -> None:
    body, headers = binary_request(
        {"text": TEXT}, outputs=[{"name": "upper", "parameters": {"binary_data": True}}, {"name": "length"}]
    )
    r = zoo.post("/v2/models/upper/infer", content=body, headers={**AUTH, **headers})
    assert r.status_code == 200, r.text
    _, out = decode_response(r.content, r.headers["inference-header-content-length"])
    assert out["upper"].tolist() == [b"HELLO!", b"W!", b"!", "ünï".encode().upper() + b"!"]
    assert out["length"].tolist() == [5, 1, 0, 5]


def test_python_model_with_non_utf8_bytes_survives_json(zoo: TestClient) -> None:
    """Binary input that is not text: the JSON answer must still be valid JSON (base64-marked)."""
    raw = np.array([b"\xff\xfe"], dtype=object)
    body, headers = binary_request({"text": raw}, outputs=[{"name": "upper"}])
    r = zoo.post("/v2/models/upper/infer", content=body, headers={**AUTH, **headers})
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["parameters"]["content_encoding"] == "base64"


def test_python_model_that_raises_is_500_with_the_reason(fresh, tmp_path) -> None:
    from v2kit import write_python_model

    write_python_model(
        tmp_path / "home" / "models",
        "boom",
        "from aiaas.runtime import Model\nclass Boom(Model):\n    def load(self): pass\n"
        "    def predict(self, inputs, parameters): raise RuntimeError('kaput ' + str(inputs['x'].shape))\n",
        "Boom",
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1]}],
    )
    c = fresh()
    r = c.post("/v2/models/boom/infer", json={"inputs": [json_input("x", np.ones(2, np.float32))]}, headers=AUTH)
    assert r.status_code == 500
    assert "kaput (2,)" in r.json()["error"] and "boom" in r.json()["error"]
    (row,) = c.get("/v2/models/boom/stats", headers=AUTH).json()["model_stats"]
    assert row["inference_stats"]["fail"]["count"] == 1


def test_python_model_with_missing_class_is_unavailable(fresh, tmp_path) -> None:
    from v2kit import write_python_model

    write_python_model(
        tmp_path / "home" / "models",
        "noclass",
        "X = 1\n",
        "Missing",
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1]}],
    )
    c = fresh()
    (row,) = index(c)["noclass"]
    assert row["state"] == "UNAVAILABLE" and "Missing" in row["reason"]
