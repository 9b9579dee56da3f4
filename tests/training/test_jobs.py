"""Real torchrun jobs: DDP across 2 worker processes, faults, cancel, crash recovery, serving the result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from security.kit import wait_for

from aiaas.jobs.jobdir import JobDir
from aiaas.jobs.store import InMemoryJobStore, JobRecord
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.training.files import load_table
from aiaas.training.launcher import JobRunner, Scheduler, prepare_job_dir, process_tree
from aiaas.training.spec import parse_spec

from .conftest import blobs_csv, tabular_request

pytestmark = pytest.mark.slow
# tests/conftest.py's admin key; not imported: "conftest" may name another directory's conftest by now
AUTH = {"Authorization": "Bearer test-admin-key"}


def _workers(torchrun_pid: int) -> list[psutil.Process]:
    return [p for p in process_tree(torchrun_pid)[1:] if "aiaas.training.worker" in " ".join(p.cmdline())]


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_two_worker_ddp_job_trains_registers_and_serves(tmp_path: Path, make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    repo = ModelRepository(settings.models_dir)
    repo.ensure()
    store = InMemoryJobStore()
    loaded: list[tuple[str, int]] = []
    s = Scheduler(store, tmp_path / "jobs", cores=2, repository=repo, on_registered=lambda m, v: loaded.append((m, v)))
    train, val = blobs_csv(tmp_path / "train.csv", 400, seed=0), blobs_csv(tmp_path / "val.csv", 200, seed=1)
    job = s.submit(
        tabular_request(train, val, resources={"workers": 2, "threads_per_worker": 1}, hyperparameters={"epochs": 3}),
        owner="tenant-a",
    )
    assert job.state == "queued" and job.files["training"]["rows"] == 400
    assert s.tick() == [job.id]
    assert s.used_cores() == 2
    job = s.wait(job.id, 120)
    assert job.state == "succeeded", job.reason
    assert job.model_version == 1 and loaded == [("clf", 1)]

    # ranks agree: identical parameters on both workers after the last step
    ranks = [json.loads(p.read_text()) for p in sorted(JobDir(Path(job.job_dir)).ranks.glob("rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["param_checksum"] == ranks[1]["param_checksum"]

    metrics = [e["data"] for e in store.events(job.id, limit=1000) if e["type"] == "metrics"]
    assert metrics and {"step", "total_steps", "loss", "samples_per_s", "epoch", "eta_s"} <= set(metrics[-1])
    assert metrics[-1]["step"] == metrics[-1]["total_steps"] == job.result["steps"]
    assert [m["step"] for m in metrics] == sorted(m["step"] for m in metrics)
    assert {"validating", "queued", "running", "rendezvous", "training", "exporting", "succeeded"} <= set(
        job.transitions
    )

    config = repo.read("clf").config
    assert config is not None and config.owner == "tenant-a"
    assert config.card.extra["training_job"] == job.id
    assert config.card.extra["data"]["training_sha256"] == job.files["training"]["sha256"]
    assert config.card.metrics["accuracy"] == job.result["metrics"]["accuracy"]

    # the new version serves through V2 at once, and beats chance on held-out data
    table = load_table(val)
    x = np.stack([table.columns[c] for c in "abcd"], axis=1).astype(np.float32)
    labels = []
    with TestClient(create_app(settings)) as client:
        for chunk in np.array_split(x, 4):  # 50 rows per request: under the model's max_batch_size
            body = {
                "inputs": [
                    {"name": "x", "shape": list(chunk.shape), "datatype": "FP32", "data": chunk.ravel().tolist()}
                ]
            }
            r = client.post("/v2/models/clf/infer", headers=AUTH, json=body)
            assert r.status_code == 200, r.text
            labels += {o["name"]: o for o in r.json()["outputs"]}["label"]["data"]
    label = np.asarray(labels)
    majority = max(table.columns["label"].mean(), 1 - table.columns["label"].mean())
    assert (label == table.columns["label"]).mean() > max(0.75, majority + 0.1)


def test_kill_9_of_a_worker_restarts_from_checkpoint(
    scheduler: Scheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold = tmp_path / "hold"  # the first attempt waits after its first checkpoint while this exists
    hold.touch()
    monkeypatch.setenv("AIAAS_TRAINING_HOLD_FILE", str(hold))
    train = blobs_csv(tmp_path / "train.csv", 400)
    job = scheduler.submit(
        tabular_request(
            train,
            resources={"workers": 2, "threads_per_worker": 1},
            max_restarts=1,
            checkpoint={"every_n_steps": 4, "keep_last": 2},
            hyperparameters={"epochs": 10, "max_steps": 40},
        )
    )
    scheduler.tick()
    runner = scheduler.runners[job.id]
    jd = JobDir(Path(job.job_dir))
    try:
        wait_for(lambda: jd.list_checkpoints(), 60, what="a first checkpoint")
        victim = wait_for(
            lambda: [p for p in _workers(runner.proc.pid) if p.environ().get("RANK") == "1"], 60, what="rank 1"
        )[0]  # type: ignore[union-attr]
        victim.send_signal(signal.SIGKILL)
    finally:
        hold.unlink()
    job = scheduler.wait(job.id, 120)
    assert job.state == "succeeded", job.reason
    assert job.restarts == 1 and "restarting" in job.transitions
    resumed = [e["data"] for e in scheduler.store.events(job.id, limit=1000) if e["data"].get("phase") == "resumed"]
    assert resumed and resumed[0]["resumed_from_step"] > 0 and resumed[0]["restart"] == 1
    assert job.result["steps"] == 40


def test_cancel_mid_run_leaves_no_process(
    scheduler: Scheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIAAS_TRAINING_STEP_DELAY_S", "0.05")
    train = blobs_csv(tmp_path / "train.csv", 400)
    job = scheduler.submit(
        tabular_request(
            train, resources={"workers": 2, "threads_per_worker": 1}, hyperparameters={"epochs": 100, "max_steps": 2000}
        )
    )
    scheduler.tick()
    runner = scheduler.runners[job.id]
    wait_for(lambda: scheduler.store.get(job.id).progress.get("step"), 60, what="training progress")
    tree = process_tree(runner.proc.pid)  # type: ignore[union-attr]
    assert len(_workers(runner.proc.pid)) == 2  # type: ignore[union-attr]
    job = scheduler.cancel(job.id)
    assert job.state == "cancelled" and job.reason == "cancelled by the user"
    assert all(_gone(p) for p in tree), [p.pid for p in tree if not _gone(p)]
    assert scheduler.used_cores() == 0


def test_corrupt_file_fails_with_a_reason(scheduler: Scheduler, tmp_path: Path) -> None:
    # caught while validating: no process is started
    bad = blobs_csv(tmp_path / "bad.csv", 60, bad_line=23)
    job = scheduler.submit(tabular_request(bad))
    assert job.state == "failed" and "line 23, column 'b': 'abc' is not a number" in (job.reason or "")
    assert scheduler.tick() == []

    # the data went bad after validation: the worker reports it and torchrun does not retry
    good = blobs_csv(tmp_path / "good.csv", 60)
    job = scheduler.submit(tabular_request(good, max_restarts=2))
    assert job.state == "queued"
    data = Path(job.job_dir) / job.spec.training_file
    data.unlink()
    blobs_csv(data, 60, bad_line=9)
    scheduler.tick()
    job = scheduler.wait(job.id, 90)
    assert job.state == "failed" and "line 9, column 'b': 'abc' is not a number" in (job.reason or "")
    assert job.restarts == 0


def test_launcher_crash_resumes_from_checkpoint(tmp_path: Path) -> None:
    train = blobs_csv(tmp_path / "train.csv", 400)
    spec = parse_spec(
        tabular_request(
            train, checkpoint={"every_n_steps": 5, "keep_last": 2}, hyperparameters={"epochs": 20, "max_steps": 60}
        )
    )
    root = tmp_path / "jobs" / "trjob-crash"
    prepare_job_dir(spec, root)
    jd = JobDir(root)
    env = {**os.environ, "AIAAS_TRAINING_STEP_DELAY_S": "0.05"}
    server = subprocess.Popen(
        [sys.executable, "-m", "aiaas.training.launcher", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: jd.list_checkpoints(), 60, what="a first checkpoint")
        old_torchrun = json.loads(jd.launcher.read_text())
        server.kill()  # the "server" dies without any cleanup
        server.wait()
        orphans = process_tree(old_torchrun["pid"], old_torchrun["create_time"])
        checkpoint_step = jd.list_checkpoints()[-1][0]

        store = InMemoryJobStore()  # the server's database after the restart: the job is still 'running'
        store.create(JobRecord(id="trjob-crash", spec=JobSpec_from(root), job_dir=str(root), state="running"))
        runner = JobRunner("trjob-crash", store)
        runner.start(resume=True)
        job = runner.wait(120)
    finally:
        if server.poll() is None:
            server.kill()
    assert job.state == "succeeded", job.reason
    assert all(_gone(p) for p in orphans)
    events = store.events("trjob-crash", limit=10_000)
    assert any("the server restarted" in e["message"] for e in events)
    resumed = [e["data"] for e in events if e["data"].get("phase") == "resumed"]
    assert resumed and resumed[-1]["resumed_from_step"] >= checkpoint_step > 0
    assert job.result["steps"] == 60


def JobSpec_from(root: Path):  # type: ignore[no-untyped-def]
    from aiaas.training.spec import JobSpec

    return JobSpec.model_validate_json(JobDir(root).spec.read_text())
