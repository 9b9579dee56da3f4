"""Errors over HTTP: the right status, the right shape, a message that names the problem, and never a 500 for
something the client got wrong."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from v2kit import AUTH, binary_request, json_input

X = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}


def v2_error(r: Any, status: int) -> str:
    """Asserts the V2 error shape ``{"error": "<message>"}`` and returns the message."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert list(doc) == ["error"] and isinstance(doc["error"], str) and doc["error"], doc
    return str(doc["error"])


def openai_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}, err
    assert err["message"]
    return dict(err)


# -- 400: the message names the tensor and what was expected -------------------------------------
@pytest.mark.parametrize(
    ("model", "doc", "must_mention"),
    [
        ("mlp", {"inputs": [{**X, "datatype": "FP64"}]}, ["'x'", "FP32", "FP64"]),
        ("mlp", {"inputs": [{**X, "datatype": "INT32", "data": [1, 2, 3, 4]}]}, ["'x'", "FP32", "INT32"]),
        ("mlp", {"inputs": [{**X, "shape": [1, 5], "data": [1.0] * 5}]}, ["'x'", "[-1, 4]", "[1, 5]"]),
        ("mlp", {"inputs": [{**X, "shape": [4], "data": [1.0] * 4}]}, ["'x'", "[-1, 4]", "[4]"]),
        ("mlp", {"inputs": [{**X, "name": "z"}]}, ["'z'", "['x']"]),
        ("mlp", {"inputs": [X, {**X, "name": "extra"}]}, ["'extra'", "['x']"]),
        ("mlp", {"inputs": [X], "outputs": [{"name": "nope"}]}, ["'nope'", "['y']"]),
        ("mlp", {"inputs": [{**X, "data": [1.0, 2.0]}]}, ["'x'", "4 elements", "2"]),
        ("mlp", {"inputs": [{**X, "data": ["a", "b", "c", "d"]}]}, ["'x'", "FP32"]),
        ("mlp", {"inputs": [{**X, "datatype": "FLOAT"}]}, ["'FLOAT'", "FP32"]),
        ("mlp", {"inputs": [{**X, "shape": "1,4"}]}, ["'x'", "shape"]),
        ("mlp", {"inputs": [{**X, "shape": [1, -4]}]}, ["'x'", "negative"]),
        ("mlp", {"inputs": [{k: v for k, v in X.items() if k != "data"}]}, ["'x'", "data"]),
        ("mlp", {"inputs": [{k: v for k, v in X.items() if k != "datatype"}]}, ["'x'", "datatype"]),
        ("mlp", {"inputs": [X, X]}, ["'x'", "twice"]),
        ("mlp", {"inputs": []}, ["inputs"]),
        ("mlp", {}, ["inputs"]),
        ("mlp", {"inputs": [{**X, "shape": [64, 4], "data": [0.0] * 256}]}, ["64", "max_batch_size 32"]),
        ("mlp", {"inputs": [X], "outputs": {"name": "y"}}, ["outputs"]),
        ("mlp", {"inputs": [X], "parameters": "fast"}, ["parameters"]),
        ("upper", {"inputs": []}, ["inputs"]),
        (
            "upper",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [5]}]},
            ["'text'", "strings"],
        ),
        (
            "upper",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "INT8", "data": [5]}]},
            ["'text'", "BYTES", "INT8"],
        ),
        ("pipe", {"inputs": [{**X, "datatype": "FP16"}]}, ["'x'", "FP32", "FP16"]),
    ],
)
def test_bad_request_names_the_tensor_and_the_expectation(
    zoo: TestClient, model: str, doc: dict, must_mention: list[str]
) -> None:
    msg = v2_error(zoo.post(f"/v2/models/{model}/infer", json=doc, headers=AUTH), 400)
    for text in must_mention:
        assert text in msg, f"{text!r} not in {msg!r}"


def test_missing_input_is_named(fresh, tmp_path) -> None:
    """A two-input model: leaving one out names the missing one."""
    from v2kit import write_python_model

    write_python_model(
        tmp_path / "home" / "models",
        "pair",
        "from aiaas.runtime import Model\nclass Add(Model):\n    def load(self): pass\n"
        "    def predict(self, inputs, parameters): return {'s': inputs['a'] + inputs['b']}\n",
        "Add",
        inputs=[
            {"name": "a", "datatype": "FP32", "shape": [-1]},
            {"name": "b", "datatype": "FP32", "shape": [-1]},
        ],
        outputs=[{"name": "s", "datatype": "FP32", "shape": [-1]}],
    )
    c = fresh()
    a = {"name": "a", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}
    msg = v2_error(c.post("/v2/models/pair/infer", json={"inputs": [a]}, headers=AUTH), 400)
    assert "['b']" in msg
    r = c.post("/v2/models/pair/infer", json={"inputs": [a, {**a, "name": "b"}]}, headers=AUTH)
    assert r.json()["outputs"][0]["data"] == [2.0, 4.0]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"\xff\xfe", b"null"])
def test_malformed_json_is_400(zoo: TestClient, body: bytes) -> None:
    msg = v2_error(zoo.post("/v2/models/mlp/infer", content=body, headers=AUTH), 400)
    assert "JSON" in msg or "inputs" in msg


@pytest.mark.parametrize(
    ("mutate", "must_mention"),
    [
        (lambda body, h: (body, {**h, "Inference-Header-Content-Length": "abc"}), "byte count"),
        (lambda body, h: (body, {**h, "Inference-Header-Content-Length": "99999"}), "outside the body"),
        (lambda body, h: (body[:-4], h), "binary_data_size"),
        (lambda body, h: (body + b"1234", h), "after the last binary input"),
        (
            lambda body, h: (body, {k: v for k, v in h.items() if k != "Inference-Header-Content-Length"}),
            "JSON",
        ),
    ],
)
def test_malformed_binary_request_is_400(zoo: TestClient, mutate, must_mention: str) -> None:
    body, headers = binary_request({"x": np.ones((1, 4), np.float32)})
    body, headers = mutate(body, headers)
    assert must_mention in v2_error(zoo.post("/v2/models/mlp/infer", content=body, headers={**AUTH, **headers}), 400)


def test_binary_size_without_header_length_is_400(zoo: TestClient) -> None:
    doc = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}
    assert "Inference-Header-Content-Length" in v2_error(zoo.post("/v2/models/mlp/infer", json=doc, headers=AUTH), 400)


@pytest.mark.parametrize(
    "doc",
    [
        {"inputs": [X], "outputs": [{"name": "y", "parameters": ["binary_data"]}]},
        {"inputs": [X], "outputs": ["y"]},
        {"inputs": [{**X, "parameters": ["x"]}]},
        {"inputs": [{**X, "name": 7}]},
        {"inputs": ["x"]},
        {"inputs": [{**X, "data": {"a": 1}}]},
        {"inputs": [{**X, "data": [[1.0, 2.0], [3.0, [4.0]]]}]},
        {"inputs": [{**X, "shape": [True, 4]}]},
        {"inputs": [{**X, "shape": [10**12, 10**12]}]},
        {"inputs": [{**X, "datatype": "BOOL", "data": [1, 0, 1, 0]}]},
    ],
)
def test_client_mistakes_are_never_500(zoo: TestClient, doc: dict) -> None:
    """Odd but harmless extras may be ignored (200); anything refused is a 4xx in the V2 shape."""
    r = zoo.post("/v2/models/mlp/infer", json=doc, headers=AUTH)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code != 200:
        v2_error(r, r.status_code)


def test_request_parameters_that_are_not_a_dict_on_an_output_are_400(zoo: TestClient) -> None:
    doc = {"inputs": [X], "outputs": [{"name": "y", "parameters": ["binary_data"]}]}
    assert "parameters" in v2_error(zoo.post("/v2/models/mlp/infer", json=doc, headers=AUTH), 400)


def test_non_integer_version_is_a_client_error(zoo: TestClient) -> None:
    r = zoo.post("/v2/models/mlp/versions/latest/infer", json={"inputs": [X]}, headers=AUTH)
    assert r.status_code in (400, 404)
    v2_error(r, r.status_code)


# -- 401 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "test-admin-key"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2"),
        ("GET", "/v2/models/mlp"),
        ("GET", "/v2/models/mlp/ready"),
        ("POST", "/v2/models/mlp/infer"),
        ("POST", "/v2/repository/index"),
        ("POST", "/v2/repository/models/mlp/load"),
        ("POST", "/v2/repository/models/mlp/unload"),
        ("GET", "/v2/models/stats"),
        ("GET", "/v2/models/nope"),  # no probing for model names without a key
    ],
)
def test_no_or_bad_key_is_401(zoo: TestClient, headers: dict, method: str, path: str) -> None:
    r = zoo.request(method, path, json={"inputs": [X]} if path.endswith("infer") else None, headers=headers)
    msg = v2_error(r, 401)
    assert "key" in msg.lower() or "authorization" in msg.lower()
    assert r.headers["www-authenticate"] == "Bearer"


def test_health_and_metrics_need_no_key(zoo: TestClient) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics", "/health"):
        assert zoo.get(path).status_code == 200, path


def test_metrics_can_require_the_key(fresh) -> None:
    c = fresh(metrics_require_key=True)
    err = openai_error(c.get("/metrics"), 401)
    assert err["type"] == "authentication_error"
    openai_error(c.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    r = c.get("/metrics", headers=AUTH)
    assert r.status_code == 200 and "aiaas_requests" in r.text
    assert c.get("/v2/health/ready").status_code == 200  # probes stay open


# -- 404 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "mention"),
    [
        ("GET", "/v2/models/nope", "nope"),
        ("GET", "/v2/models/nope/versions/1", "nope"),
        ("GET", "/v2/models/nope/ready", "nope"),
        ("GET", "/v2/models/nope/stats", "nope"),
        ("POST", "/v2/models/nope/infer", "nope"),
        ("POST", "/v2/models/nope/versions/1/infer", "nope"),
        ("GET", "/v2/models/mlp/versions/5", "5"),
        ("GET", "/v2/models/mlp/versions/5/ready", "5"),
        ("POST", "/v2/models/mlp/versions/5/infer", "5"),
        ("POST", "/v2/repository/models/nope/load", "nope"),
        ("GET", "/v2/nothing/here", "/v2/nothing/here"),
        ("POST", "/v2/models/mlp/explain", "/v2/models/mlp/explain"),
    ],
)
def test_unknown_model_version_or_route_is_404(zoo: TestClient, method: str, path: str, mention: str) -> None:
    r = zoo.request(method, path, json={"inputs": [X]} if method == "POST" else None, headers=AUTH)
    assert mention in v2_error(r, 404)


def test_wrong_method_is_405_in_v2_shape(zoo: TestClient) -> None:
    v2_error(zoo.delete("/v2/models/mlp", headers=AUTH), 405)


def test_non_v2_routes_answer_the_structured_error_shape(zoo: TestClient) -> None:
    err = openai_error(zoo.get("/no/such/route"), 404)
    assert err["type"] == "not_found_error" and "/no/such/route" in err["message"]
    openai_error(zoo.post("/metrics"), 405)


# -- 413 and compressed bodies -------------------------------------------------------------------
def _doc(rows: int) -> bytes:
    return json.dumps({"inputs": [json_input("x", np.ones((rows, 4), np.float32))]}).encode()


def test_over_the_limit_with_content_length_is_413(fresh) -> None:
    c = fresh(max_request_bytes=2000)
    assert c.post("/v2/models/mlp/infer", content=_doc(2), headers=AUTH).status_code == 200
    big = _doc(300)
    assert len(big) > 2000
    msg = v2_error(c.post("/v2/models/mlp/infer", content=big, headers=AUTH), 413)
    assert "2000" in msg


def test_over_the_limit_chunked_is_413(fresh) -> None:
    c = fresh(max_request_bytes=2000)

    def chunks(body: bytes) -> Iterator[bytes]:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    small = c.post("/v2/models/mlp/infer", content=chunks(_doc(2)), headers=AUTH)
    assert small.status_code == 200, small.text
    r = c.post("/v2/models/mlp/infer", content=chunks(_doc(300)), headers=AUTH)
    assert "content-length" not in {k.lower() for k in r.request.headers}
    v2_error(r, 413)


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_bodies_are_accepted(zoo: TestClient, encoding: str, compress) -> None:
    plain = zoo.post("/v2/models/mlp/infer", content=_doc(3), headers=AUTH).json()
    r = zoo.post("/v2/models/mlp/infer", content=compress(_doc(3)), headers={**AUTH, "Content-Encoding": encoding})
    assert r.status_code == 200 and r.json() == plain
    body, headers = binary_request({"x": np.ones((3, 4), np.float32)})
    r = zoo.post(
        "/v2/models/mlp/infer",
        content=compress(body),
        headers={**AUTH, **headers, "Content-Encoding": encoding},
    )
    assert r.status_code == 200 and r.json()["outputs"] == plain["outputs"]


def test_compressed_body_over_the_limit_is_413(fresh) -> None:
    c = fresh(max_request_bytes=2000)
    bomb = gzip.compress(_doc(400))
    assert len(bomb) < 2000
    v2_error(c.post("/v2/models/mlp/infer", content=bomb, headers={**AUTH, "Content-Encoding": "gzip"}), 413)


def test_bad_compressed_body_is_400(zoo: TestClient) -> None:
    assert "gzip" in v2_error(
        zoo.post("/v2/models/mlp/infer", content=b"not gzip", headers={**AUTH, "Content-Encoding": "gzip"}),
        400,
    )
    assert "br" in v2_error(
        zoo.post("/v2/models/mlp/infer", content=_doc(1), headers={**AUTH, "Content-Encoding": "br"}), 400
    )


def test_repository_bodies_are_limited_too(fresh) -> None:
    c = fresh(max_request_bytes=2000)
    v2_error(c.post("/v2/repository/index", content=b"{" + b" " * 5000 + b"}", headers=AUTH), 413)
    assert "JSON" in v2_error(c.post("/v2/repository/index", content=b"{bad", headers=AUTH), 400)
    assert "object" in v2_error(c.post("/v2/repository/index", content=b"[]", headers=AUTH), 400)


# -- 503 ------------------------------------------------------------------------------------------
def test_unloaded_model_is_503_with_retry_after(fresh) -> None:
    c = fresh()
    c.post("/v2/repository/models/upper/unload", headers=AUTH)
    doc = {"inputs": [json_input("text", np.array([b"a"], dtype=object))]}
    r = c.post("/v2/models/upper/infer", json=doc, headers=AUTH)
    assert "not ready" in v2_error(r, 503)
    assert int(r.headers["retry-after"]) >= 1
    v2_error(c.get("/v2/models/upper/ready", headers=AUTH), 503)


def test_broken_model_is_503_on_infer_and_ready(zoo: TestClient) -> None:
    r = zoo.post("/v2/models/corrupt/infer", json={"inputs": [X]}, headers=AUTH)
    assert "onnxruntime cannot load" in v2_error(r, 503)
    v2_error(zoo.get("/v2/models/broken/ready", headers=AUTH), 503)
