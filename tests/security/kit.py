"""Shared by the security table and the end-to-end governance tests: a model zoo on disk, databases on SQLite
and on the real PostgreSQL (one fresh schema each, dropped afterwards), a running app with tenants and keys
made through the HTTP API, and a snapshot of everything a refused request must leave alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient
from governance.conftest import PG_OK, PG_URL, REDIS_URL
from models import mlp
from sqlalchemy import create_engine, func, select, text

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings
from aiaas.store.models import ApiKey, AuditEntry, Budget, Limit, ModelAcl, ModelGrant, Tenant, UsageRecord

__all__ = ["PG_OK", "PG_URL", "REDIS_URL"]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_SECRET = "security-table-admin-secret-0123456789"
ROOT = {"Authorization": f"Bearer {ADMIN_SECRET}"}
X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
GATE_X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
BACKENDS = ["sqlite", "postgresql"]

GATE_SOURCE = '''
import os
import time

from aiaas.runtime import Model


class Gate(Model):
    """Holds every request while the gate file exists (at most 30 s): a request that keeps its slot."""

    def load(self):
        self.gate = self.config.parameters["gate"]

    def predict(self, inputs, parameters):
        deadline = time.monotonic() + 30
        while os.path.exists(self.gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        return {"y": inputs["x"] + 1}
'''


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# -- models on disk ---------------------------------------------------------------------------------------
def _edit_config(repo: ModelRepository, name: str, **changes: Any) -> None:
    path = repo.root / name / "model.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


def build_zoo(home: Path, src: Path) -> Path:
    """``pub`` (public MLP), ``secret`` (MLP owned by tenant acme), ``priced`` (public MLP at 1.0 per request),
    ``metered`` (public MLP at 1.0 per batch row, i.e. priced per unit) and ``gate`` (python model that blocks
    while ``<src>/gate`` exists). Returns the gate file's path."""
    repo = ModelRepository(home / "models")
    repo.ensure()
    onnx = mlp(src / "mlp.onnx")
    for name in ("pub", "secret", "priced", "metered"):
        import_onnx(repo, onnx, name, max_batch_size=32)
    _edit_config(repo, "secret", owner="acme")
    _edit_config(repo, "priced", pricing={"per_request": 1.0})
    _edit_config(repo, "metered", pricing={"per_1k_units": 1000.0})  # 1.0 per batch row
    gate = src / "gate"
    mdir = repo.root / "gate"
    (mdir / "1").mkdir(parents=True, exist_ok=True)
    (mdir / "1" / "model.py").write_text(GATE_SOURCE, encoding="utf-8")
    doc = {
        "backend": "python",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        "parameters": {"class": "model.py:Gate", "gate": str(gate)},
        "instances": 2,
    }
    (mdir / "model.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return gate


# -- databases --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def database(backend: str, home: Path) -> Iterator[str | None]:
    """The ``database_url`` for ``Settings``: None (SQLite in the home) or a fresh PostgreSQL schema reached
    through ``search_path``, dropped on exit."""
    if backend == "sqlite":
        yield None
        return
    schema = f"sec_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def settings_for(home: Path, database_url: str | None, **kw: Any) -> Settings:
    kw.setdefault("admin_key", ADMIN_SECRET)
    kw.setdefault("catalog", "none")
    # the tables send hundreds of invalid keys from one test client: no per-address brake unless a test asks
    kw.setdefault("auth_failures_per_minute", 0)
    return Settings(home=home, database_url=database_url, **kw)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# -- a running app ----------------------------------------------------------------------------------------
@dataclass
class Key:
    id: str
    secret: str
    tenant: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.secret)


@dataclass
class World:
    client: TestClient
    home: Path
    gate: Path
    keys: dict[str, Key] = field(default_factory=dict)

    @property
    def services(self) -> Any:
        return self.client.app.state.services  # type: ignore[attr-defined]

    @property
    def governance(self) -> Any:
        return self.services.governance

    def key(
        self,
        tenant: str,
        role: str = "user",
        *,
        limits: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
        **body: Any,
    ) -> Key:
        """A new key made through the API by the admin; ``limits`` and ``budget`` are the bodies of
        ``PUT /v1/limits/key/<id>`` and ``PUT /v1/budgets/key/<id>``, ``body`` extra fields of the key."""
        r = self.client.post("/v1/keys", json={"tenant": tenant, "role": role, **body}, headers=ROOT)
        assert r.status_code == 201, r.text
        info = r.json()
        if limits:
            r = self.client.put(f"/v1/limits/key/{info['id']}", json=limits, headers=ROOT)
            assert r.status_code == 200, r.text
        if budget is not None:
            r = self.client.put(f"/v1/budgets/key/{info['id']}", json=budget, headers=ROOT)
            assert r.status_code == 200, r.text
        return Key(info["id"], info["key"], tenant, role)

    def flush(self) -> None:
        """Write buffered usage and budget settlements now (so a snapshot sees everything)."""
        gov = self.governance
        self.client.portal.call(gov.usage.flush)  # type: ignore[union-attr]
        self.client.portal.call(gov.ledger.flush)  # type: ignore[union-attr]

    def usage_rows(self) -> int:
        self.flush()
        with self.services.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(UsageRecord)) or 0)

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused request must not change: every governance table, in-memory budget state,
        buffered usage, and each model's state, ready versions and inference count."""
        self.flush()
        gov = self.governance
        out: dict[str, Any] = {}
        with self.services.store.session() as s:
            for model in (Tenant, ModelAcl, ModelGrant, AuditEntry, UsageRecord):
                out[model.__tablename__] = s.scalar(select(func.count()).select_from(model))
            out["api_keys"] = sorted(
                (k.id, k.tenant_id, k.role, k.secret_hash, k.revoked_at is None, str(k.expires_at))
                for k in s.scalars(select(ApiKey))
            )
            out["limits"] = sorted(
                (r.scope, r.subject_id, r.requests_per_minute, r.units_per_minute, r.concurrency)
                for r in s.scalars(select(Limit))
            )
            out["budgets"] = sorted(
                (r.id, r.scope, r.subject_id, r.limit_amount, round(r.spent, 9)) for r in s.scalars(select(Budget))
            )
            ids = [b[0] for b in out["budgets"]]
        out["ledger"] = {i: round(st.spent, 9) for i in ids if (st := gov.ledger.get(i)) is not None}
        out["usage_pending"] = gov.usage.pending
        models = {}
        for name, rec in sorted(self.services.models.models.items()):
            count = sum(vr.executor.stats.inference_count for vr in rec.versions.values() if vr.executor)
            models[name] = (rec.state, sorted(v for v, vr in rec.versions.items() if vr.ready), count)
        out["models"] = models
        return out


@contextlib.contextmanager
def make_world(home: Path, src: Path, database_url: str | None, **settings: Any) -> Iterator[World]:
    """An app over the zoo with tenants acme and globex (made through the API); yields, then shuts down."""
    gate = build_zoo(home, src)
    app = create_app(settings_for(home, database_url, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        world = World(client, home, gate)
        for tenant in ("acme", "globex"):
            r = client.post("/v1/tenants", json={"name": tenant}, headers=ROOT)
            assert r.status_code == 201, r.text
        yield world


@contextlib.contextmanager
def served(home: Path, log: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``aiaas serve`` (uvicorn) on a free port over ``home``: yields (base URL, process) once ready,
    and always stops it (SIGTERM, then SIGKILL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full = {k: v for k, v in os.environ.items() if not k.startswith("AIAAS_")}
    full.update(AIAAS_CATALOG="none", AIAAS_ADMIN_KEY=ADMIN_SECRET, AIAAS_LOG_LEVEL="warning", **env)
    full["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full.get("PYTHONPATH", "")
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiaas.cli.main", "serve", "--home", str(home), "--port", str(port)],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(REPO_ROOT),
        )
    try:

        def ready() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            return False

        wait_for(ready, timeout=60, what="the server to start")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def error_message(r: httpx.Response) -> str:
    err = r.json()["error"]
    return err if isinstance(err, str) else err["message"]
