"""Real torchrun jobs through the HTTP API with the app's scheduler running (SQLite): a 2-worker DDP job whose
new model version answers V2 at once; events, checkpoints and logs; cancel; a server restart mid-job."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from security.kit import settings_for

from aiaas.server.app import create_app
from aiaas.training.files import load_table
from aiaas.training.launcher import process_tree

from .conftest import World, blobs_csv, tabular_job, upload, wait_job

pytestmark = pytest.mark.slow


@pytest.fixture
def world(world_factory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with world_factory("sqlite", training_cores=2) as w:
        yield w


def _tree(w: World, job_id: str) -> list[psutil.Process]:
    runner = w.services.jobs.scheduler().runners.get(job_id)
    return process_tree(runner.proc.pid) if runner is not None and runner.proc is not None else []


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_two_worker_ddp_job_serves_its_version_through_v2(world: World) -> None:
    acme, globex = world.key("acme", "developer"), world.key("globex", "developer")
    train = upload(world.client, acme, "train.csv", blobs_csv(400, seed=0)).json()["id"]
    val_bytes = blobs_csv(200, seed=1)
    val = upload(world.client, acme, "val.csv", val_bytes).json()["id"]
    body = tabular_job(
        train,
        "churn",
        validation_file=val,
        resources={"workers": 2, "threads_per_worker": 1},
        hyperparameters={"epochs": 3},
    )
    r = world.client.post("/v1/training/jobs", json=body, headers=acme.headers)
    assert r.status_code == 201, r.text
    job = wait_job(world.client, acme, r.json()["id"])
    assert job["status"] == "succeeded", job["reason"]
    assert (job["model"], job["model_version"], job["owner"], job["validation_file"]) == ("churn", 1, "acme", val)
    assert {"validating", "queued", "running", "rendezvous", "training", "exporting", "succeeded"} <= set(
        job["transitions"]
    )
    assert job["metrics"]["accuracy"] > 0.75 and job["result"]["workers"] == 2
    jid = job["id"]

    metrics = world.client.get(f"/v1/training/jobs/{jid}/events?type=metrics&limit=1000", headers=acme.headers).json()[
        "data"
    ]
    assert metrics and all(e["type"] == "metrics" for e in metrics)
    assert metrics[-1]["data"]["step"] == metrics[-1]["data"]["total_steps"] == job["result"]["steps"]
    assert {"loss", "samples_per_s", "eta_s"} <= set(metrics[-1]["data"])
    first = world.client.get(f"/v1/training/jobs/{jid}/events?limit=2", headers=acme.headers).json()
    assert [e["seq"] for e in first["data"]] == [1, 2] and first["has_more"] and first["last_seq"] == 2
    nxt = world.client.get(f"/v1/training/jobs/{jid}/events?after=2&limit=1", headers=acme.headers).json()
    assert [e["seq"] for e in nxt["data"]] == [3]
    messages = world.client.get(f"/v1/training/jobs/{jid}/events?type=message&limit=1000", headers=acme.headers).json()[
        "data"
    ]
    assert any(e["message"] == "registered model 'churn' version 1" for e in messages)
    assert world.client.get(f"/v1/training/jobs/{jid}/events?level=error", headers=acme.headers).json()["data"] == []

    ckpts = world.client.get(f"/v1/training/jobs/{jid}/checkpoints", headers=acme.headers).json()["data"]
    assert ckpts and ckpts[-1]["step"] == job["result"]["steps"] and ckpts[-1]["bytes"] > 0
    assert len(ckpts) <= 2  # keep_last
    for rank in (0, 1):
        log = world.client.get(f"/v1/training/jobs/{jid}/logs?rank={rank}", headers=acme.headers)
        assert log.status_code == 200 and f"rank{rank}" in log.text and "rendezvous" in log.text
    assert "torch.distributed.run" in world.client.get(f"/v1/training/jobs/{jid}/logs", headers=acme.headers).text
    bad = world.client.get(f"/v1/training/jobs/{jid}/logs?rank=2", headers=acme.headers)
    assert bad.status_code == 400 and "between 0 and 1" in bad.json()["error"]["message"]

    # the new version serves at once, for its tenant only, and beats chance on held-out data
    val_path = world.home / "val.csv"
    val_path.write_bytes(val_bytes)
    table = load_table(val_path)
    x = np.stack([table.columns[c] for c in "abcd"], axis=1).astype(np.float32)[:60]
    infer = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    r = world.client.post("/v2/models/churn/versions/1/infer", json=infer, headers=acme.headers)
    assert r.status_code == 200, r.text
    labels = np.asarray({o["name"]: o for o in r.json()["outputs"]}["label"]["data"])
    assert (labels == table.columns["label"][:60]).mean() > 0.75
    assert world.client.post("/v2/models/churn/infer", json=infer, headers=globex.headers).status_code == 404


def test_cancel_through_the_api_stops_every_worker(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIAAS_TRAINING_STEP_DELAY_S", "0.05")
    acme = world.key("acme", "developer")
    train = upload(world.client, acme, "train.csv", blobs_csv(200)).json()["id"]
    body = tabular_job(
        train, resources={"workers": 2, "threads_per_worker": 1}, hyperparameters={"epochs": 100, "max_steps": 2000}
    )
    jid = world.client.post("/v1/training/jobs", json=body, headers=acme.headers).json()["id"]
    wait_job(world.client, acme, jid, until=lambda j: j["progress"].get("step"))
    tree = _tree(world, jid)
    assert len(tree) >= 3  # torchrun and its two workers
    r = world.client.post(f"/v1/training/jobs/{jid}/cancel", headers=acme.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and "cancelled by the user" in r.json()["reason"]
    assert all(_gone(p) for p in tree), [p.pid for p in tree if not _gone(p)]
    again = world.client.post(f"/v1/training/jobs/{jid}/cancel", headers=acme.headers)
    assert again.status_code == 409


def test_server_restart_mid_job_resumes_it(world_factory, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIAAS_TRAINING_STEP_DELAY_S", "0.05")
    with world_factory("sqlite", training_cores=2) as w:
        acme = w.key("acme", "developer")
        train = upload(w.client, acme, "train.csv", blobs_csv(400)).json()["id"]
        body = tabular_job(
            train,
            "resumed",
            checkpoint={"every_n_steps": 4, "keep_last": 2},
            hyperparameters={"epochs": 20, "max_steps": 50},
        )
        jid = w.client.post("/v1/training/jobs", json=body, headers=acme.headers).json()["id"]
        wait_job(w.client, acme, jid, until=lambda j: j["progress"].get("step", 0) >= 8)
        tree = _tree(w, jid)
        home = w.home
    # the app has shut down: the job's processes are gone, and the database still says "running"
    assert tree and all(_gone(p) for p in tree)
    launcher = json.loads((home / "jobs" / jid / "launcher.json").read_text())
    checkpoint = max(int(p.stem.split("-")[1]) for p in (home / "jobs" / jid / "checkpoints").glob("step-*.pt"))
    assert checkpoint > 0

    with TestClient(create_app(settings_for(home, None, training_cores=2))) as client:
        job = wait_job(client, acme, jid)
        assert job["status"] == "succeeded", job["reason"]
        assert job["result"]["steps"] == 50 and job["model_version"] == 1
        events = client.get(f"/v1/training/jobs/{jid}/events?type=message&limit=1000", headers=acme.headers).json()[
            "data"
        ]
        assert any("the server restarted; the job resumes from its checkpoint" in e["message"] for e in events)
        resumed = [e["data"] for e in events if e["data"].get("phase") == "resumed"]
        assert resumed and resumed[-1]["resumed_from_step"] >= checkpoint
        new_launch = json.loads((home / "jobs" / jid / "launcher.json").read_text())
        assert new_launch["pid"] != launcher["pid"] and new_launch["first_start"] == launcher["first_start"]
        x = [[0.5, -0.2, 0.1, 0.3]]
        r = client.post(
            "/v2/models/resumed/infer",
            headers=acme.headers,
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x[0]}]},
        )
        assert r.status_code == 200, r.text
