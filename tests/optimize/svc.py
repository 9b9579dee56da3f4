"""Helpers of the ``/v1/optimizations`` tests: an app over the governance zoo (tenants acme and globex, public
MLP ``pub``, acme's ``secret``, python model ``gate``), evaluation rows for the zoo's MLP, a fast workload and
polling through the API."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from jobkit import poll_job
from models import mlp_reference
from security.kit import ROOT, Key, World, database, make_world

__all__ = ["ROOT", "Key", "World"]

# tiny measurements: the tests check the machinery, not the speed (bench/optimize.py measures that)
FAST = {
    "batch_sizes": [1, 8],
    "threads": 1,
    "concurrency": 1,
    "iterations": 5,
    "max_seconds": 0.2,
    "throughput_seconds": 0.1,
    "warmup": 1,
}


def mlp_rows(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the zoo's MLP and the class its float32 reference picks (so the baseline scores 1.0)."""
    x = np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)
    return x, mlp_reference(x).argmax(axis=1).astype(np.int64)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def upload(client: Any, key: Key | dict[str, str], name: str, content: bytes) -> str:
    headers = key if isinstance(key, dict) else key.headers
    r = client.post("/v1/files", files={"file": (name, content)}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def eval_file(client: Any, key: Key | dict[str, str], n: int = 200) -> str:
    x, y = mlp_rows(n)
    return upload(client, key, "eval.npz", npz_bytes(x=x, label=y))


def request(model: str, file_id: str, passes: Any = ("graph",), **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "passes": list(passes), "evaluation": {"file": file_id}, "workload": FAST}
    body.update(kw)
    return body


def wait(
    client: Any,
    key: Key | dict[str, str],
    job_id: str,
    until: Callable[[dict[str, Any]], Any] | None = None,
    timeout: float = 180.0,
) -> dict[str, Any]:
    return poll_job(
        client, key if isinstance(key, dict) else key.headers, f"/v1/optimizations/{job_id}", until, timeout
    )


@contextlib.contextmanager
def world(tmp_path: Path, backend: str = "sqlite", **settings: Any) -> Iterator[World]:
    settings.setdefault("training_cores", 2)
    settings.setdefault("optimize_min_speedup", 0)  # tiny models, noisy timings: the tests check the machinery
    home = tmp_path / f"home-{backend}"
    with database(backend, home) as url, make_world(home, tmp_path / "src", url, **settings) as w:
        yield w
