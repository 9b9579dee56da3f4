"""The standard ``tritonclient.http`` client against a real aiaas server: the protocol as others implement it.

tritonclient mutates the ``headers`` dict it is given, so every call gets a fresh one.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as th
from models import mlp_reference
from tritonclient.utils import InferenceServerException
from v2kit import ADMIN_KEY, ServerProcess, json_input

pytestmark = pytest.mark.slow

X = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def triton(served: ServerProcess) -> Iterator[th.InferenceServerClient]:
    client = th.InferenceServerClient(served.url.removeprefix("http://"), network_timeout=60.0)
    yield client
    client.close()


def test_health_and_metadata(triton: th.InferenceServerClient) -> None:
    assert triton.is_server_live(headers=auth())
    assert triton.is_server_ready(headers=auth())
    meta = triton.get_server_metadata(headers=auth())
    assert meta["name"] == "aiaas" and "binary_tensor_data" in meta["extensions"]
    model = triton.get_model_metadata("mlp", headers=auth())
    assert model["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, 4]}
    assert triton.get_model_metadata("mlp", model_version="1", headers=auth())["versions"] == ["1"]
    assert triton.is_model_ready("mlp", headers=auth())
    assert triton.is_model_ready("mlp", "1", headers=auth())
    assert not triton.is_model_ready("nope", headers=auth())


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer_fp32(triton: th.InferenceServerClient, binary_in: bool, binary_out: bool) -> None:
    inp = th.InferInput("x", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=binary_in)
    out = th.InferRequestedOutput("y", binary_data=binary_out)
    result = triton.infer("mlp", [inp], outputs=[out], request_id="t-1", headers=auth())
    np.testing.assert_allclose(result.as_numpy("y"), mlp_reference(X), rtol=1e-5)
    response = result.get_response()
    assert response["id"] == "t-1" and response["model_version"] == "1"


def test_infer_versioned_with_compression(triton: th.InferenceServerClient) -> None:
    inp = th.InferInput("x", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    result = triton.infer("mlp", [inp], model_version="1", headers=auth(), request_compression_algorithm="gzip")
    np.testing.assert_allclose(result.as_numpy("y"), mlp_reference(X), rtol=1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_infer_bytes_with_parameters(triton: th.InferenceServerClient, binary: bool) -> None:
    text = np.array([b"ab", b"", b"xyz"], dtype=object)
    inp = th.InferInput("text", [3], "BYTES")
    inp.set_data_from_numpy(text, binary_data=binary)
    outs = [
        th.InferRequestedOutput("upper", binary_data=binary),
        th.InferRequestedOutput("length", binary_data=binary),
    ]
    result = triton.infer("upper", [inp], outputs=outs, parameters={"suffix": "~"}, headers=auth())
    upper = [v if isinstance(v, bytes) else v.encode() for v in result.as_numpy("upper").tolist()]
    assert upper == [b"AB~", b"~", b"XYZ~"]
    assert result.as_numpy("length").tolist() == [2, 0, 3]
    assert result.as_numpy("params") is None  # not requested


def test_client_errors(triton: th.InferenceServerClient) -> None:
    inp = th.InferInput("x", [2, 4], "FP64")
    inp.set_data_from_numpy(X.astype(np.float64))
    with pytest.raises(InferenceServerException) as e:
        triton.infer("mlp", [inp], headers=auth())
    assert e.value.status() == "400" and "FP32" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        triton.get_model_metadata("nope", headers=auth())
    assert e.value.status() == "404"
    with pytest.raises(InferenceServerException) as e:
        triton.get_model_metadata("mlp", headers={"Authorization": "Bearer wrong"})
    assert e.value.status() == "401"


def test_repository_and_statistics(triton: th.InferenceServerClient) -> None:
    index = {row["name"]: row for row in triton.get_model_repository_index(headers=auth())}
    assert index["mlp"]["state"] == "READY" and index["upper"]["state"] == "READY"

    triton.unload_model("upper", headers=auth())
    assert not triton.is_model_ready("upper", headers=auth())
    index = {row["name"]: row for row in triton.get_model_repository_index(headers=auth())}
    assert index["upper"]["state"] == "UNAVAILABLE"
    triton.load_model("upper", headers=auth())
    assert triton.is_model_ready("upper", headers=auth())

    inp = th.InferInput("x", [2, 4], "FP32")
    inp.set_data_from_numpy(X)
    before = triton.get_inference_statistics("mlp", headers=auth())["model_stats"][0]["inference_count"]
    triton.infer("mlp", [inp], headers=auth())
    (row,) = triton.get_inference_statistics("mlp", headers=auth())["model_stats"]
    assert row["name"] == "mlp" and row["inference_count"] == before + 2
    assert row["inference_stats"]["success"]["count"] >= 1
    every = {r["name"] for r in triton.get_inference_statistics(headers=auth())["model_stats"]}
    assert {"mlp", "upper"} <= every


# -- the same wire details through a plain HTTP client ------------------------------------------------
def test_body_limit_over_the_wire(served: ServerProcess) -> None:
    """Over a real socket: 413 for a declared length and for a chunked upload past max_request_bytes."""
    big = json.dumps({"inputs": [json_input("x", np.ones((80000, 4), np.float32))]}).encode()
    assert len(big) > 1 << 20
    r = httpx.post(served.url + "/v2/models/mlp/infer", content=big, headers=auth(), timeout=30)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    try:
        r = httpx.post(served.url + "/v2/models/mlp/infer", content=chunks(), headers=auth(), timeout=30)
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pytest.fail("the server must answer 413 to a chunked upload, not drop the connection")
    assert r.status_code == 413


def test_gzip_bomb_over_the_wire(served: ServerProcess) -> None:
    bomb = gzip.compress(b" " * (4 << 20))
    r = httpx.post(
        served.url + "/v2/models/mlp/infer",
        content=bomb,
        headers={**auth(), "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert r.status_code == 413


def test_metrics_over_the_wire(served: ServerProcess) -> None:
    text = httpx.get(served.url + "/metrics", timeout=10).text
    assert 'aiaas_model_state{model="mlp",state="READY",version="1"} 1.0' in text
