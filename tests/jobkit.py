"""Shared by the training, jobs and optimization tests: polling a job through the API, the check that another
tenant's resource answers exactly like a missing one, a job store on SQLite or a fresh PostgreSQL schema, and the
check that a test left no worker process of its own behind."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from governance.conftest import PG_URL
from sqlalchemy import create_engine, text

from aiaas.store.db import Store

TERMINAL = ("succeeded", "failed", "cancelled")


def poll_job(
    client: Any,
    headers: dict[str, str],
    path: str,
    until: Callable[[dict[str, Any]], Any] | None = None,
    timeout: float = 180.0,
) -> dict[str, Any]:
    """GET ``path`` (a job) until ``until(job)`` (default: a terminal state); fails if it ends otherwise."""
    until = until or (lambda j: j["status"] in TERMINAL)
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(path, headers=headers)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if until(job):
            return job
        assert job["status"] not in TERMINAL, f"job ended {job['status']}: {job['reason']}"
        assert time.monotonic() < deadline, f"timed out waiting for {path}: {job}"
        time.sleep(0.2)


def assert_hidden_like_missing(
    client: Any, headers: dict[str, str], base: str, theirs_id: str, missing_id: str, requests: list[tuple[str, str]]
) -> None:
    """For each (method, suffix): ``base/<theirs_id><suffix>`` answers 404 with the message that
    ``base/<missing_id><suffix>`` gets (ids swapped), so a key cannot tell another tenant's resource from none."""
    for method, suffix in requests:
        theirs = client.request(method, f"{base}/{theirs_id}{suffix}", headers=headers)
        nothing = client.request(method, f"{base}/{missing_id}{suffix}", headers=headers)
        assert theirs.status_code == nothing.status_code == 404, (method, suffix, theirs.text)
        assert theirs.json()["error"]["message"].replace(theirs_id, "X") == nothing.json()["error"]["message"].replace(
            missing_id, "X"
        )


@contextlib.contextmanager
def job_store(backend: str, tmp_path: Path, prefix: str) -> Iterator[Store]:
    """A ``Store`` on SQLite in ``tmp_path``, or on PostgreSQL in a fresh schema ``<prefix>_...`` dropped after."""
    if backend == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
        yield store
        store.dispose()
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    store = Store(PG_URL, schema=schema)
    yield store
    store.dispose()
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def kill_stray_processes(*markers: str) -> list[int]:
    """Kill this process's descendants whose command line holds one of ``markers``; returns their pids."""
    left = [p for p in psutil.Process(os.getpid()).children(recursive=True) if any(m in _cmdline(p) for m in markers)]
    for p in left:
        p.kill()
    return [p.pid for p in left]


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""
