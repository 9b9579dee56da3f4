"""``DbJobStore`` keeps the engine's ``JobStore`` contract on SQLite and PostgreSQL; revision 0003 upgrades an
older database in place."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobkit import job_store
from sqlalchemy import inspect, text

from aiaas.errors import NotFound
from aiaas.jobs.store import JobRecord
from aiaas.service.jobs import DbJobStore
from aiaas.store.db import Store, current_revision, head_revision
from aiaas.training.spec import parse_spec

from .conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with job_store(request.param, tmp_path, "jobs_test") as store:
        yield store


def _job(job_id: str, created: float, **kw: object) -> JobRecord:
    spec = parse_spec(
        {"recipe": "tabular", "training_file": "/data/t.csv", "model": "clf", "hyperparameters": {"label": "y"}}
    )
    return JobRecord(id=job_id, spec=spec, job_dir=f"/jobs/{job_id}", created_at=created, **kw)  # type: ignore[arg-type]


def test_job_lifecycle_is_logged(db: Store, caplog: pytest.LogCaptureFixture) -> None:
    db.upgrade()
    s = DbJobStore(db)
    with caplog.at_level("INFO", logger="aiaas.jobs"):
        s.create(_job("j9", 1.0))
        s.update("j9", state="queued")
        s.update("j9", progress={"step": 1})  # not a state change: no line
        s.update("j9", state="failed", reason="out of memory")
    lines = [(r.getMessage(), r.__dict__.get("event")) for r in caplog.records if r.name == "aiaas.jobs"]
    assert lines == [
        ("training job j9 created (validating)", "validating"),
        ("training job j9 validating -> queued", "queued"),
        ("training job j9 queued -> failed: out of memory", "failed"),
    ]


def test_job_store_contract(db: Store) -> None:
    db.upgrade()
    s = DbJobStore(db)
    s.create(_job("j2", 2.5, owner="acme", transitions={"validating": 2.5}))
    s.create(_job("j1", 1.25, owner="globex"))
    got = s.get("j2")
    assert (got.id, got.owner, got.state, got.created_at, got.transitions) == (
        "j2",
        "acme",
        "validating",
        2.5,
        {"validating": 2.5},
    )
    assert got.spec.hyperparameters == {"label": "y"} and got.spec.resources.workers == 1
    with pytest.raises(NotFound):
        s.get("nope")
    with pytest.raises(NotFound):
        s.update("nope", state="queued")
    with pytest.raises(AttributeError):
        s.update("j2", colour="blue")

    new_spec = got.spec.model_copy(update={"training_file": "data/train.csv", "priority": 7})
    done = s.update(
        "j2",
        state="succeeded",
        spec=new_spec,
        result={"metrics": {"accuracy": 0.9}},
        model_version=3,
        progress={"step": 10, "total_steps": 10},
        transitions={"validating": 2.5, "succeeded": 9.0},
        restarts=1,
    )
    assert done.state == "succeeded" and done.model_version == 3 and done.restarts == 1
    again = s.get("j2")
    assert again.spec.training_file == "data/train.csv" and again.priority == 7
    assert again.result == {"metrics": {"accuracy": 0.9}} and again.progress["step"] == 10
    assert again.transitions == {"validating": 2.5, "succeeded": 9.0}

    assert [j.id for j in s.list()] == ["j1", "j2"]  # oldest first
    assert [j.id for j in s.list(["succeeded"])] == ["j2"]
    assert s.list(["running"]) == []

    s.append_events(
        "j1", [{"ts": 1.0, "level": "info", "type": "message", "message": "a", "data": {"phase": "rendezvous"}}]
    )
    s.append_events(
        "j1",
        [
            {"ts": 2.0, "type": "metrics", "message": "", "data": {"step": 1, "loss": 0.5}},
            {"ts": 3.0, "level": "error", "message": "boom"},
        ],
        events_offset=1234,
    )
    events = s.events("j1")
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[1]["data"] == {"step": 1, "loss": 0.5} and events[2]["level"] == "error"
    assert [e["seq"] for e in s.events("j1", after=1, limit=1)] == [2]
    assert [e["seq"] for e in s.events("j1", types=["metrics"])] == [2]
    assert [e["message"] for e in s.events("j1", levels=["error"])] == ["boom"]
    assert s.get("j1").events_offset == 1234 and s.events("j2") == []


def test_concurrent_event_writers_get_distinct_seqs(db: Store) -> None:
    db.upgrade()
    s = DbJobStore(db)
    s.create(_job("j", 1.0))

    def write(tag: str) -> None:
        for i in range(15):
            s.append_events("j", [{"ts": float(i), "message": f"{tag}{i}"}])

    threads = [threading.Thread(target=write, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = s.events("j", limit=100)
    assert [e["seq"] for e in events] == list(range(1, 31))
    assert sorted(e["message"] for e in events) == sorted(f"{t}{i}" for t in "ab" for i in range(15))


def test_upgrade_from_0002_adds_the_tables_and_keeps_data(db: Store) -> None:
    db.upgrade("0002")
    with db.engine.begin() as conn:
        assert "training_jobs" not in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO tenants (id, created_at) VALUES ('old', '2024-01-02 03:04:05')"))
    db.upgrade()
    assert current_revision(db.engine) == head_revision()  # 0004 added training_jobs.kind
    with db.engine.connect() as conn:
        assert {"files", "training_jobs", "training_job_events"} <= set(inspect(conn).get_table_names())
        assert conn.execute(text("SELECT id FROM tenants")).scalars().all() == ["old"]
    DbJobStore(db).create(_job("j", 1.0))  # the new tables work after the in-place upgrade
