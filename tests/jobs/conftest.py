"""Fixtures of the training-service tests: an app over the governance zoo (tenants acme and globex) on SQLite and
on the real PostgreSQL, data files, and a guard that no test leaves a training process behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from governance.conftest import PG_OK
from jobkit import kill_stray_processes, poll_job
from security.kit import ROOT, Key, World, database, make_world

__all__ = ["ROOT", "Key", "World"]

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_OK, reason="no PostgreSQL"))]


def blobs_csv(n: int, seed: int = 0, bad_line: int | None = None) -> bytes:
    """A separable binary problem in columns a,b,c,d -> label; ``bad_line`` puts 'abc' in column b there."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] > 0).astype(int)
    lines = ["a,b,c,d,label"]
    for i, (row, label) in enumerate(zip(x, y, strict=True)):
        cells = [f"{v:.4f}" for v in row]
        if bad_line is not None and i + 2 == bad_line:  # line 1 is the header
            cells[1] = "abc"
        lines.append(",".join(cells) + f",{label}")
    return ("\n".join(lines) + "\n").encode()


def upload(client: TestClient, key: Key | dict[str, str], name: str, content: bytes, **data: str) -> Any:
    headers = key if isinstance(key, dict) else key.headers
    return client.post("/v1/files", files={"file": (name, content)}, data=data or None, headers=headers)


def tabular_job(file_id: str, model: str = "clf", **kw: Any) -> dict[str, Any]:
    hp = {"label": "label", "epochs": 2, "batch_size": 32, "hidden": [16]}
    hp.update(kw.pop("hyperparameters", {}))
    body: dict[str, Any] = {
        "recipe": "tabular",
        "training_file": file_id,
        "model": model,
        "hyperparameters": hp,
        "resources": {"workers": 1, "threads_per_worker": 1},
        "checkpoint": {"every_n_steps": 5, "keep_last": 2},
        "max_restarts": 0,
        "max_runtime_s": 300,
    }
    body.update(kw)
    return body


def wait_job(
    client: TestClient,
    key: Key | dict[str, str],
    job_id: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 180.0,
) -> dict[str, Any]:
    """Poll the job through the API until ``until(job)`` (default: a terminal state)."""
    return poll_job(
        client, key if isinstance(key, dict) else key.headers, f"/v1/training/jobs/{job_id}", until, timeout
    )


@pytest.fixture
def world_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``with world_factory(backend, **settings) as w``: an app with tenants acme and globex."""
    import contextlib

    @contextlib.contextmanager
    def make(backend: str = "sqlite", **settings: Any) -> Iterator[World]:
        home = tmp_path / f"home-{backend}"
        with database(backend, home) as url, make_world(home, tmp_path / "src", url, **settings) as w:
            yield w

    yield make


@pytest.fixture(autouse=True)
def _no_stray_workers() -> Iterator[None]:
    """Every test must leave no training process of its own behind."""
    yield
    left = kill_stray_processes("aiaas.training")
    assert not left, f"training processes left running: {left}"
