"""autoscale: replicas follow the queue time; min_replicas 0 scales to zero and concurrent first requests share
one start (worker processes: a start is real, ~1 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from v2kit import AUTH, write_python_model

from aiaas.server.app import create_app
from aiaas.settings import Settings

pytestmark = pytest.mark.slow

SLOW_SOURCE = """
import os
import time

import numpy as np

from aiaas.runtime import Model


class Slow(Model):
    def load(self):
        pass

    def predict(self, inputs, parameters):
        time.sleep(0.05)
        return {"pid": np.array([os.getpid()] * inputs["x"].shape[0], dtype=np.int64)}
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("autoscale") / "home"
    write_python_model(
        home / "models",
        "slow",
        SLOW_SOURCE,
        "Slow",
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1]}],
        outputs=[{"name": "pid", "datatype": "INT64", "shape": [-1]}],
        max_batch_size=1,
        placement="process",
        autoscale={"min_replicas": 0, "max_replicas": 2, "target_queue_ms": 20, "scale_down_delay_s": 1},
    )
    settings = Settings(home=home, admin_key="test-admin-key", catalog="none", governance="off")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _replicas(client: TestClient) -> list[dict[str, Any]]:
    return [
        r for r in client.get("/v1/models/slow/replicas", headers=AUTH).json()["replicas"] if r["state"] != "retiring"
    ]


def _wait(client: TestClient, n: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(_replicas(client)) != n and time.monotonic() < deadline:
        time.sleep(0.1)
    return _replicas(client)


def test_idle_scales_to_zero_and_first_requests_share_one_start(client: TestClient) -> None:
    assert _wait(client, 0, 10) == []  # idle past scale_down_delay_s: no replica left
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: client.post("/v2/models/slow/infer", json=BODY, headers=AUTH), range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    pids = {a.json()["outputs"][0]["data"][0] for a in answers}
    assert len(pids) == 1  # one start served all four
    assert len(_replicas(client)) == 1


def test_a_queue_adds_replicas_up_to_the_maximum_and_idle_removes_them(client: TestClient) -> None:
    deadline = time.monotonic() + 6
    seen = 0
    with ThreadPoolExecutor(6) as pool:
        while time.monotonic() < deadline and seen < 2:
            codes = list(
                pool.map(lambda _: client.post("/v2/models/slow/infer", json=BODY, headers=AUTH).status_code, range(12))
            )
            assert set(codes) == {200}
            seen = max(seen, len(_replicas(client)))
    assert seen == 2  # max_replicas
    assert _wait(client, 0, 10) == []
