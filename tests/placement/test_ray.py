"""placement: ray -- a real two-node Ray cluster on loopback (one CPU per node), started and torn down here.

Replicas spread over both nodes, a second aiaas server reuses them, scale up/down under load, and a node
removed mid-load loses no request. Every listening socket of the cluster must be on loopback.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import yaml
from fastapi.testclient import TestClient
from models import mlp, mlp_reference
from v2kit import AUTH, free_port, running_server

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings

pytestmark = pytest.mark.slow
NAMESPACE = f"aiaas-test-{os.getpid()}"
ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep the node address on 127.0.0.1
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "redis_port": free_port(),
        },
    )
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        yield c
    finally:
        from aiaas.placement.ray import disconnect

        disconnect()
        c.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ray") / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(home.parent / "mlp.onnx"), "mlp", max_batch_size=32)
    path = home / "models" / "mlp" / "model.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(placement="ray", instances=2, resources={"num_cpus": 0.5, "strategy": "SPREAD"})
    path.write_text(yaml.safe_dump(doc))
    return home


@pytest.fixture(scope="module")
def client(cluster: Any, home: Path) -> Iterator[TestClient]:
    settings = Settings(
        home=home,
        admin_key="test-admin-key",
        catalog="none",
        governance="off",
        ray_address=cluster.address,
        ray_namespace=NAMESPACE,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _replicas(get: Callable[..., Any]) -> list[dict[str, Any]]:
    r = get("/v1/models/mlp/replicas", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["replicas"]


def _under_load(client: TestClient, during: Callable[[], None], workers: int = 4) -> list[int]:
    """Run ``during`` while ``workers`` clients send requests nonstop; every status code they got."""
    stop = threading.Event()
    codes: list[int] = []
    errors: list[str] = []

    def load() -> None:
        while not stop.is_set():
            r = client.post("/v2/models/mlp/infer", json=ROW, headers=AUTH)
            codes.append(r.status_code)
            if r.status_code != 200:
                errors.append(r.text)

    with ThreadPoolExecutor(workers) as pool:
        futs = [pool.submit(load) for _ in range(workers)]
        time.sleep(0.3)
        try:
            during()
            time.sleep(0.3)
        finally:
            stop.set()
        for f in futs:
            f.result()
    assert not errors, errors[:3]
    return codes


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or addr).is_loopback


def test_no_ray_socket_listens_beyond_loopback(client: TestClient) -> None:
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    listening = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [(p.name(), c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    assert len(listening) > 3  # GCS, raylets, object managers, workers: the check looked at them
    assert all(_loopback(ip) for _, ip, _ in listening), listening
    assert all(port != 6379 for _, _, port in listening)  # Redis' port stays Redis'


def test_replicas_spread_over_both_nodes_and_serve(client: TestClient) -> None:
    reps = _replicas(client.get)
    assert [r["placement"] for r in reps] == ["ray", "ray"] and {r["state"] for r in reps} == {"ready"}
    assert len({r["node"] for r in reps}) == 2 and {r["host"] for r in reps} == {"127.0.0.1"}
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = client.post(
        "/v2/models/mlp/infer",
        headers=AUTH,
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4], "data": x.ravel().tolist()}]},
    )
    assert r.status_code == 200, r.text
    y = np.array(r.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, 3)
    np.testing.assert_allclose(y, mlp_reference(x), rtol=1e-5, atol=1e-5)
    codes = _under_load(client, lambda: time.sleep(0.5))
    assert set(codes) == {200}
    assert all(r["batches"] > 0 for r in _replicas(client.get))  # both replicas took batches


def test_a_second_server_reuses_the_replicas(cluster: Any, client: TestClient, home: Path) -> None:
    import ray

    before = {r["actor"]: r["pid"] for r in _replicas(client.get)}
    actors = len(ray.util.list_named_actors(all_namespaces=True))
    with running_server(
        home, "test-admin-key", AIAAS_GOVERNANCE="off", AIAAS_RAY_ADDRESS=cluster.address, AIAAS_RAY_NAMESPACE=NAMESPACE
    ) as second:
        reps = _replicas(lambda path, **kw: httpx.get(second.url + path, **kw))
        assert {r["actor"]: r["pid"] for r in reps} == before and all(r["reused"] for r in reps)
        assert len(ray.util.list_named_actors(all_namespaces=True)) == actors
        r = httpx.post(second.url + "/v2/models/mlp/infer", json=ROW, headers=AUTH)
        assert r.status_code == 200, r.text
    # the second server stopped; the shared replicas still serve the first
    assert {r["actor"]: r["pid"] for r in _replicas(client.get)} == before
    assert client.post("/v2/models/mlp/infer", json=ROW, headers=AUTH).status_code == 200


def test_scale_up_and_down_under_load_without_a_failed_request(client: TestClient) -> None:
    def scale() -> None:
        for n in (3, 2):
            r = client.post("/v1/models/mlp/scale", json={"replicas": n}, headers=AUTH)
            assert r.status_code == 200, r.text

    codes = _under_load(client, scale)
    assert len(codes) > 10 and set(codes) == {200}
    deadline = time.monotonic() + 20
    while len(_replicas(client.get)) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [r["id"] for r in _replicas(client.get)] == ["r0", "r1"]


def test_a_two_node_training_job_registers_a_version(cluster: Any, client: TestClient, tmp_path: Path) -> None:
    """One torchrun per node (placement group STRICT_SPREAD), c10d rendezvous at the first node, one worker each."""
    from jobkit import poll_job
    from security.kit import make_world

    # the nodes have one CPU each: the serving replicas (0.5 CPU on each node) make room while the job runs
    assert client.post("/v2/repository/models/mlp/unload", headers=AUTH).status_code == 200
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in r) + f",{int(r[0] + r[1] > 0)}" for r in x]
    try:
        with make_world(tmp_path / "home", tmp_path / "src", None, ray_address=cluster.address) as w:
            acme = w.key("acme", "developer")
            fid = w.client.post(
                "/v1/files", files={"file": ("t.csv", "\n".join(rows).encode())}, headers=acme.headers
            ).json()["id"]
            body = {
                "recipe": "tabular",
                "training_file": fid,
                "model": "two-nodes",
                "max_restarts": 0,
                "hyperparameters": {"label": "label", "epochs": 2, "batch_size": 32, "hidden": [8]},
                "resources": {"nodes": 2, "workers_per_node": 1, "threads_per_worker": 1},
            }
            r = w.client.post("/v1/training/jobs", json=body, headers=acme.headers)
            assert r.status_code == 201, r.text
            job = poll_job(w.client, acme.headers, f"/v1/training/jobs/{r.json()['id']}", timeout=240)
            assert job["status"] == "succeeded", job
            assert job["model_version"] == 1 and job["result"]["workers"] == 2  # one rank on each node
            logs = w.home / "jobs" / job["id"] / "logs"
            assert (logs / "node-0.log").is_file() and (logs / "node-1.log").is_file()
    finally:
        assert client.post("/v2/repository/models/mlp/load", headers=AUTH).status_code == 200


def test_a_node_removed_mid_load_loses_no_request(cluster: Any, client: TestClient) -> None:
    reps = _replicas(client.get)
    head = cluster.head_node.node_id
    [worker] = [n for n in cluster.list_all_nodes() if n.node_id != head]
    assert worker.node_id in {r["node"] for r in reps}

    def retried() -> int:
        versions = client.app.state.services.models.models["mlp"].versions.values()
        return sum(vr.executor.retried for vr in versions if vr.executor is not None)

    before = retried()
    codes = _under_load(client, lambda: cluster.remove_node(worker))
    print(
        f"node removed mid-load: {len(codes)} requests sent, {sum(c != 200 for c in codes)} not answered 200, "
        f"{retried() - before} retried on the other replica"
    )
    assert len(codes) > 10 and set(codes) == {200}  # retried on the other replica; none lost
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        reps = _replicas(client.get)
        if all(r["state"] == "ready" for r in reps) and all(r["node"] == head for r in reps):
            break
        client.post("/v2/models/mlp/infer", json=ROW, headers=AUTH)  # lets the lost replica notice
        time.sleep(0.2)
    assert {r["node"] for r in reps} == {head} and {r["state"] for r in reps} == {"ready"}, reps
    assert sum(r["restarts"] for r in reps) >= 1
