"""Real optimization jobs through the HTTP API, each in its own worker process on the training scheduler: an
accepted candidate becomes a version that serves through V2 at once (and ``compare`` measures it against its
source), a 95% pruning of a trained model is rejected with a report saying why and registers nothing, and
cancel stops the worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from jobs.conftest import blobs_csv, tabular_job, wait_job
from jobs.conftest import upload as upload_file

from aiaas.training.launcher import process_tree

from .svc import FAST, ROOT, World, eval_file, request, wait, world

pytestmark = pytest.mark.slow
X = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0]}]}


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path) as w:
        yield w


def test_accepted_candidate_serves_at_once_and_compares_with_its_source(w: World) -> None:
    fid = eval_file(w.client, ROOT)
    body = request("pub", fid, [["graph"], ["graph", "quantize-dynamic"]])
    r = w.client.post("/v1/optimizations", json=body, headers=ROOT)
    assert r.status_code == 201, r.text
    job = wait(w.client, ROOT, r.json()["id"])
    assert job["status"] == "succeeded", job["reason"]
    assert job["accepted"] and job["model_version"] == 2 and job["chosen"] in ("graph", "graph+quantize-dynamic")
    assert {
        "validating",
        "queued",
        "running",
        "starting",
        "baseline",
        "optimizing",
        "measuring",
        "registering",
        "succeeded",
    } <= set(job["transitions"])
    report = job["report"]
    assert report["baseline"]["metric"] == {"name": "accuracy", "value": 1.0, "rows": 200, "higher_is_better": True}
    assert [c["name"] for c in report["candidates"]] == ["graph", "graph+quantize-dynamic"]
    assert set(report["baseline"]["latency"]) == {"batch_1", "batch_8"} and report["workload"]["batch_size"] == 8
    graph = report["candidates"][0]
    assert graph["decision"]["accepted"] and graph["measurement"]["metric"]["value"] == 1.0
    messages = [e["message"] for e in job["events"]]
    assert "registered model 'pub' version 2" in messages and f"chose {job['chosen']}" in messages
    metrics = w.client.get(f"/v1/optimizations/{job['id']}/events?type=metrics", headers=ROOT).json()["data"]
    assert metrics and metrics[-1]["data"]["fraction"] == 1.0
    assert "aiaas.optimize.worker" in w.client.get(f"/v1/optimizations/{job['id']}/logs", headers=ROOT).text

    # the new version is served now, carries its report, and answers like the source (graph rewrites only)
    version_dir = w.home / "models" / "pub" / "2"
    assert sorted(p.name for p in version_dir.iterdir()) == ["model.onnx", "optimization.json"]
    card = json.loads((version_dir / "optimization.json").read_text())
    assert card["chosen"] == job["chosen"] and card["source"]["version"] == 1
    new = w.client.post("/v2/models/pub/versions/2/infer", json=X, headers=ROOT)
    assert new.status_code == 200, new.text
    x = np.asarray(X["inputs"][0]["data"], dtype=np.float32).reshape(2, 4)
    from models import mlp_reference

    got = np.asarray(new.json()["outputs"][0]["data"]).reshape(2, 3)
    assert (got.argmax(1) == mlp_reference(x).argmax(1)).all()
    meta = w.client.get("/v1/models", headers=ROOT).json()
    assert meta  # the listing still answers with the reloaded model

    # compare: version 2 against version 1 on the same rows, as `aiaas models compare pub 1 2` does
    r = w.client.post(
        "/v1/optimizations",
        json={"model": "pub", "version": 1, "compare_version": 2, "evaluation": {"file": fid}, "workload": FAST},
        headers=ROOT,
    )
    assert r.status_code == 201, r.text
    cmp = wait(w.client, ROOT, r.json()["id"])
    assert cmp["status"] == "succeeded" and cmp["mode"] == "compare" and cmp["model_version"] is None
    assert cmp["report"]["baseline_name"] == "version 1"
    assert [c["name"] for c in cmp["report"]["candidates"]] == ["version 2"]
    assert cmp["report"]["candidates"][0]["decision"]["accepted"]
    assert sorted(p.name for p in (w.home / "models" / "pub").iterdir() if p.name.isdigit()) == ["1", "2"]
    listed = w.client.get("/v1/optimizations", headers=ROOT).json()["data"]
    assert [j["mode"] for j in listed] == ["compare", "optimize"] and "report" not in listed[0]


def test_95_percent_pruning_of_a_trained_model_is_rejected_with_the_reason(w: World) -> None:
    """A model trained here has its checkpoint and its validation rows: prune runs on the torch network, the
    gate compares on the validation file, and a harmful candidate leaves only its report."""
    acme = w.key("acme", "developer")
    train = upload_file(w.client, acme, "train.csv", blobs_csv(300, seed=0)).json()["id"]
    val = upload_file(w.client, acme, "val.csv", blobs_csv(150, seed=1)).json()["id"]
    body = tabular_job(train, "churn", validation_file=val, hyperparameters={"epochs": 8, "hidden": [32]})
    r = w.client.post("/v1/training/jobs", json=body, headers=acme.headers)
    assert r.status_code == 201, r.text
    trained = wait_job(w.client, acme, r.json()["id"])
    assert trained["status"] == "succeeded", trained["reason"]

    body = {"model": "churn", "passes": [{"name": "prune", "amount": 0.95}], "workload": FAST}
    r = w.client.post("/v1/optimizations", json=body, headers=acme.headers)
    assert r.status_code == 201, r.text
    job = wait(w.client, acme, r.json()["id"])
    assert job["status"] == "succeeded", job["reason"]
    assert job["accepted"] is False and job["model_version"] is None
    assert job["evaluation"]["name"] == f"validation file of training job {trained['id']}"
    assert job["evaluation"]["rows"] == 150 and job["evaluation"]["metric"] == "accuracy"
    cand = job["report"]["candidates"][0]
    assert cand["name"] == "prune" and not cand["decision"]["accepted"]
    reason = cand["decision"]["reason"]
    assert reason.startswith("rejected: accuracy") and "> 1% allowed" in reason, reason
    assert cand["details"]["prune"]["weight_sparsity"] > 0.9
    assert cand["details"]["export-onnx"]["exporter"] == "torchscript"  # the training service's exporter
    assert job["report"]["source"]["kind"] == "torch" and job["report"]["source"]["recipe"] == "tabular"
    assert job["decision"] == f"prune: {reason}"
    assert "no candidate accepted" in [e["message"] for e in job["events"]]
    assert sorted(p.name for p in (w.home / "models" / "churn").iterdir() if p.name.isdigit()) == ["1"]

    # the fine-tuning passes train with the recipe inside the job; an accepted candidate serves as version 2
    body = {
        "model": "churn",
        "passes": [
            [{"name": "distill", "width": 0.5, "epochs": 3}],
            [{"name": "prune", "amount": 0.3, "fine_tune_epochs": 2}],
        ],
        "criterion": {"max_relative_loss": 0.05},
        "workload": FAST,
    }
    r = w.client.post("/v1/optimizations", json=body, headers=acme.headers)
    assert r.status_code == 201, r.text
    job = wait(w.client, acme, r.json()["id"])
    assert job["status"] == "succeeded" and job["accepted"] and job["model_version"] == 2, job["decision"]
    distill, prune = job["report"]["candidates"]
    assert (
        distill["details"]["distill"]["parameter_ratio"] < 0.6 and prune["details"]["prune"]["fine_tune"]["epochs"] == 2
    )
    tuning = w.client.get(f"/v1/optimizations/{job['id']}/events?type=metrics&limit=1000", headers=acme.headers).json()
    assert any(e["data"].get("phase") == "fine-tuning" and "loss" in e["data"] for e in tuning["data"])
    assert "fine-tuning" in job["transitions"]
    r = w.client.post("/v2/models/churn/versions/2/infer", json=X, headers=acme.headers)
    assert r.status_code == 200, r.text
    assert {o["name"] for o in r.json()["outputs"]} == {"probabilities", "label"}


def test_cancel_stops_the_worker(w: World) -> None:
    fid = eval_file(w.client, ROOT)
    slow = {**FAST, "iterations": 100_000, "max_seconds": 120, "throughput_seconds": 120}
    r = w.client.post("/v1/optimizations", json=request("pub", fid, workload=slow), headers=ROOT)
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    wait(w.client, ROOT, jid, until=lambda j: j["sub_status"] in ("baseline", "optimizing", "measuring"))
    runner = w.services.jobs.scheduler().runners[jid]
    tree = process_tree(runner.proc.pid)
    assert tree and "aiaas.optimize.worker" in " ".join(tree[0].cmdline())
    r = w.client.post(f"/v1/optimizations/{jid}/cancel", headers=ROOT)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and "cancelled by the user" in r.json()["reason"]
    assert all(_gone(p) for p in tree), [p.pid for p in tree if not _gone(p)]
    assert w.client.post(f"/v1/optimizations/{jid}/cancel", headers=ROOT).status_code == 409
    assert not (w.home / "models" / "pub" / "2").exists()  # nothing was registered


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_a_server_restart_runs_the_optimization_again(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from security.kit import settings_for

    from aiaas.server.app import create_app

    slow = {**FAST, "max_seconds": 30, "iterations": 100_000}
    with world(tmp_path) as w:
        fid = eval_file(w.client, ROOT)
        jid = w.client.post("/v1/optimizations", json=request("pub", fid, workload=slow), headers=ROOT).json()["id"]
        wait(w.client, ROOT, jid, until=lambda j: j["sub_status"] in ("baseline", "optimizing", "measuring"))
        home = w.home
    # the app has shut down mid-job: the worker is gone and the database still says "running"
    with TestClient(create_app(settings_for(home, None, training_cores=2))) as client:
        assert client.get(f"/v1/optimizations/{jid}", headers=ROOT).json()["status"] == "running"
        client.app.state.services.jobs.scheduler().runners[jid].cancel()  # type: ignore[attr-defined]
        job = wait(client, ROOT, jid)
        assert job["status"] == "cancelled"
        messages = [e["message"] for e in job["events"]]
        assert any("the server restarted; the job resumes from the beginning" in m for m in messages)
