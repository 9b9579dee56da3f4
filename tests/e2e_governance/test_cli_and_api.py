"""Issue 3 end to end: the CLI and the HTTP API on one database (SQLite, then PostgreSQL), a key that calls a
model, its usage in the API and in the CLI table, the audit trail, a restart and a graceful stop."""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from security.kit import ROOT, X, auth, error_message, served, settings_for, wait_for
from sqlalchemy import func, select
from typer.testing import CliRunner

from aiaas.cli.main import app as cli_app
from aiaas.server.app import create_app
from aiaas.store.db import Store
from aiaas.store.models import UsageRecord

from .conftest import Site

KEY_RE = re.compile(r"aiaas-([0-9a-f]{12})-[A-Za-z0-9_-]{20,}")
runner = CliRunner()


def cli(site: Site, *args: str) -> str:
    env = {"AIAAS_DATABASE_URL": site.database_url or "", "COLUMNS": "250"}
    result = runner.invoke(cli_app, [*args, "--home", str(site.home)], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def table_rows(out: str) -> dict[str, list[str]]:
    """The body rows of a rich table, by their first cell."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells
    return rows


def usage(client: TestClient, group_by: str, **params: str) -> list[dict[str, Any]]:
    r = client.get("/v1/usage", params={"tenant": "acme", "group_by": group_by, **params}, headers=ROOT)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def test_cli_and_http_end_to_end(site: Site) -> None:
    settings = settings_for(site.home, site.database_url)
    with TestClient(create_app(settings)) as c:
        # The operator works with the CLI against the running server's database.
        assert "created tenant acme" in cli(site, "tenants", "create", "acme")
        out = cli(site, "keys", "create", "--tenant", "acme", "--role", "user", "--rpm", "60", "--budget", "10/month")
        match = KEY_RE.search(out)
        assert match, out
        secret, key_id = match.group(0), match.group(1)
        assert out.count(secret) == 1 and "shown once" in out
        assert secret not in cli(site, "keys", "list", "--tenant", "acme")  # never shown again

        # The new key calls a public model at once, with its limits and budget already in force.
        key = auth(secret)
        for i in range(10):
            r = c.post("/v2/models/priced/infer", json=X, headers=key)
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-limit-requests"] == "60"
            assert r.headers["x-ratelimit-remaining-requests"] == str(59 - i)
        r = c.post("/v2/models/priced/infer", json=X, headers=key)
        assert r.status_code == 402 and "limit 10.0000 per month" in error_message(r)
        for _ in range(2):
            assert c.post("/v2/models/pub/infer", json=X, headers=key).status_code == 200  # free model: still fine

        # Usage lands within about a second (buffered, off the request path).
        by_model = wait_for(
            lambda: (rows := usage(c, "model")) and sum(row["requests"] for row in rows) == 12 and rows,
            what="usage to be flushed",
        )
        assert {row["model"]: (row["requests"], row["cost"]) for row in by_model} == {
            "priced": (10, 10.0),
            "pub": (2, 0.0),
        }
        assert [(row["key"], row["requests"]) for row in usage(c, "key")] == [(key_id, 12)]
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        assert [(row["day"], row["requests"]) for row in usage(c, "day")] == [(today, 12)]
        assert usage(c, "model", start="2000-01-01", end="2000-01-02") == []
        # The key itself sees its own usage and budget.
        assert sum(row["requests"] for row in c.get("/v1/usage", headers=key).json()["data"]) == 12
        assert c.get(f"/v1/budgets/key/{key_id}", headers=key).json()["spent"] == 10.0

        rows = table_rows(cli(site, "usage", "--tenant", "acme", "--group-by", "model"))
        assert rows["priced"][1:2] == ["10"] and rows["priced"][6] == "10", rows
        assert rows["pub"][1] == "2", rows
        audit = cli(site, "audit")
        for action in ("tenant.create", "key.create", "limits.set", "budget.set"):
            assert action in audit, audit
        api_audit = c.get("/v1/audit", params={"tenant": "acme"}, headers=ROOT).json()["data"]
        assert {"tenant.create", "key.create", "limits.set", "budget.set"} <= {a["action"] for a in api_audit}
        assert all(a["actor_key"] == "admin" for a in api_audit)  # the CLI acts as the bootstrap admin

    # A restart keeps tenants, keys, usage and what the budget has spent. Usage is now flushed only at shutdown.
    restarted = settings_for(site.home, site.database_url, usage_flush_s=3600, key_cache_ttl_s=0.5)
    with TestClient(create_app(restarted)) as c:
        assert "acme" in {t["id"] for t in c.get("/v1/tenants", headers=ROOT).json()["data"]}
        assert c.get(f"/v1/keys/{key_id}", headers=ROOT).json()["status"] == "active"
        assert sum(row["requests"] for row in usage(c, "model")) == 12
        assert c.post("/v2/models/priced/infer", json=X, headers=key).status_code == 402  # still spent
        for _ in range(5):
            assert c.post("/v2/models/pub/infer", json=X, headers=key).status_code == 200
        assert c.app.state.services.governance.usage.pending == 5  # type: ignore[attr-defined]
        # A key revoked with the CLI (another process) stops working within the server's key cache TTL.
        assert f"revoked key {key_id}" in cli(site, "keys", "revoke", key_id)
        r = wait_for(
            lambda: (r := c.get("/v2/models/pub", headers=key)).status_code == 401 and r,
            timeout=5,
            what="the revocation to reach the server",
        )
        assert "revoked" in error_message(r)
    # The graceful stop wrote the buffered rows: nothing lost.
    store = Store(settings.effective_database_url)
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.key_id == key_id)) == 17
    finally:
        store.dispose()
    assert table_rows(cli(site, "usage", "--tenant", "acme", "--group-by", "key"))[key_id][1] == "17"


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_owner_declared_in_model_yaml_grants_and_manages_its_model(site: Site) -> None:
    """``secret`` names tenant acme as owner in its model.yaml: acme's developer grants it to globex and can
    take it back, and unloads and loads it; globex's developer cannot."""
    with TestClient(create_app(settings_for(site.home, site.database_url))) as c:
        keys = {}
        for tenant in ("acme", "globex"):
            assert c.post("/v1/tenants", json={"name": tenant}, headers=ROOT).status_code == 201
            for role in ("developer", "user"):
                r = c.post("/v1/keys", json={"tenant": tenant, "role": role}, headers=ROOT)
                keys[f"{tenant}_{role}"] = auth(r.json()["key"])
        assert c.post("/v2/models/secret/infer", json=X, headers=keys["globex_user"]).status_code == 404
        r = c.post("/v1/models/secret/grants/globex", headers=keys["acme_developer"])
        assert r.status_code == 200 and r.json()["grants"] == ["globex"], r.text
        assert c.post("/v2/models/secret/infer", json=X, headers=keys["globex_user"]).status_code == 200
        # Granted is not owned: globex may call it, not pass it on or unload it.
        assert c.post("/v1/models/secret/grants/globex", headers=keys["globex_developer"]).status_code == 403
        assert c.post("/v2/repository/models/secret/unload", headers=keys["globex_developer"]).status_code == 403
        r = c.delete("/v1/models/secret/grants/globex", headers=keys["acme_developer"])
        assert r.status_code == 200 and r.json()["grants"] == []
        assert c.post("/v2/models/secret/infer", json=X, headers=keys["globex_user"]).status_code == 404
        assert c.post("/v2/repository/models/secret/unload", headers=keys["acme_developer"]).status_code == 200
        assert c.get("/v2/models/secret/ready", headers=keys["acme_user"]).status_code == 503
        assert c.post("/v2/repository/models/secret/load", headers=keys["acme_developer"]).status_code == 200
        assert c.get("/v2/models/secret/ready", headers=keys["acme_user"]).status_code == 200
        actions = [a["action"] for a in c.get("/v1/audit", params={"tenant": "globex"}, headers=ROOT).json()["data"]]
        assert "model.grant" in actions and "model.revoke_grant" in actions


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_health_stays_open_and_metrics_follow_the_setting(site: Site) -> None:
    with TestClient(create_app(settings_for(site.home, site.database_url))) as c:
        for path in ("/health", "/v2/health/live", "/v2/health/ready", "/metrics"):
            assert c.get(path).status_code == 200, path
        assert c.get("/v2/models/pub").status_code == 401
    with TestClient(create_app(settings_for(site.home, site.database_url, metrics_require_key=True))) as c:
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=ROOT).status_code == 200


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_sigterm_on_a_real_server_writes_buffered_usage(site: Site) -> None:
    """``aiaas serve`` under uvicorn with usage flushed only at shutdown: SIGTERM exits 0 and every row is
    written."""
    with served(site.home, site.home.parent / "server.log", AIAAS_USAGE_FLUSH_S="3600") as (url, proc):
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/v1/tenants", json={"name": "acme"}, headers=ROOT).status_code == 201
            made = http.post("/v1/keys", json={"tenant": "acme"}, headers=ROOT).json()
            for _ in range(5):
                assert http.post("/v2/models/priced/infer", json=X, headers=auth(made["key"])).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    store = Store(settings_for(site.home, None).effective_database_url)
    try:
        with store.session() as s:
            rows = s.execute(select(UsageRecord.key_id, UsageRecord.cost).where(UsageRecord.tenant_id == "acme")).all()
    finally:
        store.dispose()
    assert [(k, c) for k, c in rows] == [(made["id"], 1.0)] * 5


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_a_tenant_reusing_a_deleted_name_sees_none_of_its_history(site: Site) -> None:
    """Usage and audit outlive a deleted tenant (they are history); a new tenant with the same name starts
    with an empty usage report and audit trail."""
    with TestClient(create_app(settings_for(site.home, site.database_url))) as c:
        assert c.post("/v1/tenants", json={"name": "phoenix"}, headers=ROOT).status_code == 201
        old = c.post("/v1/keys", json={"tenant": "phoenix", "role": "developer"}, headers=ROOT).json()
        assert c.post("/v2/models/priced/infer", json=X, headers=auth(old["key"])).status_code == 200
        wait_for(lambda: usage(c, "model", tenant="phoenix"), what="usage of the first tenant")
        assert c.delete("/v1/tenants/phoenix", headers=ROOT).status_code == 200
        assert c.post("/v1/tenants", json={"name": "phoenix"}, headers=ROOT).status_code == 201
        new = auth(c.post("/v1/keys", json={"tenant": "phoenix", "role": "developer"}, headers=ROOT).json()["key"])
        assert c.get("/v1/usage", params={"start": "2000-01-01"}, headers=new).json()["data"] == []
        trail = c.get("/v1/audit", headers=new).json()["data"]
        assert old["id"] not in {a["target"] for a in trail} and "tenant.delete" not in {a["action"] for a in trail}
        # The operator still has the whole history.
        assert sum(row["requests"] for row in usage(c, "model", tenant="phoenix", start="2000-01-01")) == 1
