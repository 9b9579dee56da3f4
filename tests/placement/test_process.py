"""placement: process -- worker processes, tensors through shared memory, a segfault costs one request only."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from models import mlp, scale
from placekit import v2_body, write_crashy
from v2kit import AUTH, write_pipeline, write_upper_model

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("place") / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(home.parent / "mlp.onnx"), "mlp", max_batch_size=32)
    write_crashy(home / "models")  # placement auto -> process (python backend)
    write_crashy(home / "models", "pair", instances=2, placement="process")
    write_crashy(home / "models", "scaly", placement="process")
    write_upper_model(home / "models")  # BYTES in and out through the worker
    import_onnx(repo, scale(home.parent / "double.onnx", 2.0), "double", max_batch_size=8)
    write_pipeline(
        home / "models",
        "mixed",
        steps=[  # a process step, then a thread step
            {"name": "a", "model": "crashy", "inputs": {"x": "x"}},
            {"name": "b", "model": "double", "inputs": {"x": "a.y"}},
        ],
        outputs={"y": "b.y"},
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    )
    settings = Settings(home=home, admin_key="test-admin-key", catalog="none", governance="off")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _replicas(client: TestClient, model: str) -> list[dict]:
    r = client.get(f"/v1/models/{model}/replicas", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["replicas"]


def test_python_models_run_in_worker_processes(client: TestClient) -> None:
    r = client.post("/v2/models/crashy/infer", json=v2_body([[1, 2], [3, 4]]), headers=AUTH)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["y"]["data"] == [2, 4, 6, 8]
    worker = out["pid"]["data"][0]
    assert worker != psutil.Process().pid  # not this process
    assert psutil.Process(worker).ppid() == psutil.Process().pid  # a child of the server
    [rep] = _replicas(client, "crashy")
    assert rep["placement"] == "process" and rep["pid"] == worker and rep["state"] == "ready"
    assert _replicas(client, "mlp")[0]["placement"] == "thread"


def test_a_pipeline_mixes_placements(client: TestClient) -> None:
    r = client.post("/v2/models/mixed/infer", json=v2_body([[1, 2]]), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [4, 8]  # crashy (worker process) doubles, double (thread) doubles
    assert _replicas(client, "mixed")[0]["placement"] == "thread"


def test_bytes_and_parameters_cross_to_the_worker(client: TestClient) -> None:
    body = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["ab", "hello"]}],
        "parameters": {"suffix": "?"},
    }
    r = client.post("/v2/models/upper/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"] for o in r.json()["outputs"]}
    assert out["upper"] == ["AB?", "HELLO?"] and out["length"] == [2, 5]
    assert _replicas(client, "upper")[0]["placement"] == "process"


def test_a_model_error_is_a_clear_500_and_the_worker_lives_on(client: TestClient) -> None:
    pid = _replicas(client, "crashy")[0]["pid"]
    r = client.post("/v2/models/crashy/infer", json=v2_body([[-2, 0]]), headers=AUTH)
    assert r.status_code == 500 and "crashy" in r.text and "refuses" in r.text
    assert _replicas(client, "crashy")[0]["pid"] == pid


def test_a_client_mistake_raised_in_the_worker_keeps_its_status(client: TestClient) -> None:
    r = client.post("/v2/models/crashy/infer", json=v2_body([[-3, 0]]), headers=AUTH)
    assert r.status_code == 400, r.text  # InvalidInput in the worker is a 400, exactly as with placement: thread
    assert "x holds -3" in r.json()["error"]


def test_a_segfault_fails_its_request_only_and_the_replica_restarts(client: TestClient) -> None:
    before = _replicas(client, "crashy")[0]
    other = client.post(
        "/v2/models/mlp/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        headers=AUTH,
    )
    assert other.status_code == 200

    def ok(i: int) -> int:
        return client.post("/v2/models/crashy/infer", json=v2_body([[i, i]]), headers=AUTH).status_code

    with ThreadPoolExecutor(8) as pool:
        crash = pool.submit(lambda: client.post("/v2/models/crashy/infer", json=v2_body([[-1, 0]]), headers=AUTH))
        mlp_during = [
            pool.submit(
                lambda: (
                    client.post(
                        "/v2/models/mlp/infer",
                        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
                        headers=AUTH,
                    ).status_code
                )
            )
            for _ in range(20)
        ]
        r = crash.result()
    assert r.status_code == 503, r.text
    msg = r.json()["error"]
    assert "crashy" in msg and "SIGSEGV" in msg and "restarted" in msg
    assert all(f.result() == 200 for f in mlp_during)  # other models never notice
    # the next requests succeed (they wait for the new worker)
    assert [ok(i) for i in range(5)] == [200] * 5
    after = _replicas(client, "crashy")[0]
    assert after["restarts"] == before["restarts"] + 1 and after["state"] == "ready"
    assert after["pid"] != before["pid"] and "SIGSEGV" in after["last_error"]
    assert not psutil.pid_exists(before["pid"]) or psutil.Process(before["pid"]).status() == psutil.STATUS_ZOMBIE


def test_requests_batched_with_a_crash_are_retried_on_another_replica(client: TestClient) -> None:
    """Two replicas: the crashing request fails alone (retried once, it kills a second worker); the requests
    that shared its batch are answered by the other replica."""
    n0 = sum(r["restarts"] for r in _replicas(client, "pair"))
    with ThreadPoolExecutor(12) as pool:
        futs = [
            pool.submit(client.post, "/v2/models/pair/infer", json=v2_body([[i, 1]]), headers=AUTH) for i in range(10)
        ]
        bad = pool.submit(client.post, "/v2/models/pair/infer", json=v2_body([[-1, -1]]), headers=AUTH)
        futs += [
            pool.submit(client.post, "/v2/models/pair/infer", json=v2_body([[i, 1]]), headers=AUTH) for i in range(10)
        ]
        codes = [f.result().status_code for f in futs]
        assert bad.result().status_code == 503 and "pair" in bad.result().text
    assert codes == [200] * 20
    assert 1 <= sum(r["restarts"] for r in _replicas(client, "pair")) - n0 <= 2
    y = client.post("/v2/models/pair/infer", json=v2_body([[5, 6]]), headers=AUTH).json()["outputs"][0]["data"]
    assert np.allclose(y, [10, 12])


def test_scale_up_and_down_under_load_drops_nothing(client: TestClient) -> None:
    stop = threading.Event()
    codes: list[int] = []

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            codes.append(client.post("/v2/models/scaly/infer", json=v2_body([[i, 1]]), headers=AUTH).status_code)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(load)
        r = client.post("/v1/models/scaly/scale", json={"replicas": 3}, headers=AUTH)
        assert r.status_code == 200, r.text
        reps = r.json()["replicas"]
        assert len(reps) == 3 and {x["state"] for x in reps} == {"ready"} and len({x["pid"] for x in reps}) == 3
        n_up = len(codes)
        time.sleep(0.5)
        r = client.post("/v1/models/scaly/scale", json={"replicas": 1}, headers=AUTH)
        assert r.status_code == 200, r.text
        time.sleep(0.5)
        stop.set()
    assert len(codes) > n_up and set(codes) == {200}
    deadline = time.monotonic() + 10
    while len(_replicas(client, "scaly")) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    [left] = _replicas(client, "scaly")
    assert left["id"] == "r0" and left["state"] == "ready"


def test_scale_refuses_bad_counts_and_unknown_models(client: TestClient) -> None:
    for bad in (0, -1, "2", 2.5, True, 10_000):
        r = client.post("/v1/models/scaly/scale", json={"replicas": bad}, headers=AUTH)
        assert r.status_code == 400 and "replicas" in r.text
    assert client.post("/v1/models/scaly/scale", json={}, headers=AUTH).status_code == 400
    assert client.post("/v1/models/nope/scale", json={"replicas": 1}, headers=AUTH).status_code == 404
    assert client.get("/v1/models/nope/replicas", headers=AUTH).status_code == 404
    assert client.get("/v1/models/scaly/replicas").status_code == 401


def test_replica_metrics(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'aiaas_replicas{model="crashy",node="local",placement="process",state="ready"} 1.0' in text
    assert 'aiaas_replica_restarts_total{model="crashy",replica="1/r0"} 1.0' in text
    assert 'aiaas_replica_batch_seconds_total{model="mlp",replica="1/r0"}' in text
