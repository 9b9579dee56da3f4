from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aiaas.api.governance import router
from aiaas.errors import AiaasError
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.service import DbGovernance

from .conftest import ADMIN_SECRET

pytestmark = pytest.mark.anyio
ROOT = {"Authorization": f"Bearer {ADMIN_SECRET}"}


def make_app(gov: DbGovernance, admin: GovernanceAdmin) -> FastAPI:
    """What the lead's app factory does for this router: state + AiaasError rendering."""
    app = FastAPI()
    app.state.governance, app.state.governance_admin = gov, admin
    app.include_router(router)

    @app.exception_handler(AiaasError)
    async def render(_: Request, exc: AiaasError) -> JSONResponse:
        return JSONResponse(exc.to_openai(), status_code=exc.status_code, headers=exc.headers)

    return app


@pytest.fixture
async def client(gov: DbGovernance, admin: GovernanceAdmin) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(gov, admin))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_management_flow(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/tenants", json={"name": "acme"}, headers=ROOT)
    assert r.status_code == 201 and r.json()["id"] == "acme"
    assert (await client.post("/v1/tenants", json={"name": "acme"}, headers=ROOT)).status_code == 409
    r = await client.post("/v1/keys", json={"tenant": "acme", "role": "developer"}, headers=ROOT)
    assert r.status_code == 201
    dev_key, dev_id = r.json()["key"], r.json()["id"]
    dev = {"Authorization": f"Bearer {dev_key}"}
    r = await client.post("/v1/keys", json={"tenant": "acme", "role": "user", "models": ["m1"]}, headers=dev)
    assert r.status_code == 201
    user_id = r.json()["id"]
    listed = (await client.get("/v1/keys", params={"tenant": "acme"}, headers=dev)).json()["data"]
    assert {k["id"] for k in listed} == {dev_id, user_id} and all("key" not in k for k in listed)
    r = await client.put(f"/v1/limits/key/{user_id}", json={"requests_per_minute": 30, "concurrency": 2}, headers=dev)
    assert r.status_code == 200 and r.json()["requests_per_minute"] == 30
    assert (await client.get(f"/v1/limits/key/{user_id}", headers=dev)).json()["concurrency"] == 2
    r = await client.put("/v1/budgets/tenant/acme", json={"limit": 25, "period": "month"}, headers=ROOT)
    assert r.json()["limit"] == 25 and r.json()["spent"] == 0
    assert (await client.get("/v1/budgets/tenant/acme", headers=dev)).json()["period"] == "month"
    r = await client.put("/v1/models/m1/owner", json={"owner": "acme", "public": False}, headers=ROOT)
    assert r.json() == {"model": "m1", "owner": "acme", "public": False, "grants": []}
    await client.post("/v1/tenants", json={"name": "globex"}, headers=ROOT)
    r = await client.post("/v1/models/m1/grants/globex", headers=dev)
    assert r.status_code == 200 and r.json()["grants"] == ["globex"]
    assert (await client.delete("/v1/models/m1/grants/globex", headers=dev)).json()["grants"] == []
    r = await client.post(f"/v1/keys/{user_id}/rotate", headers=dev)
    assert r.status_code == 201 and r.json()["key"].startswith("aiaas-")
    assert (await client.get(f"/v1/keys/{user_id}", headers=dev)).json()["status"] == "revoked"
    new_id = r.json()["id"]
    assert (await client.post(f"/v1/keys/{new_id}/revoke", headers=dev)).json()["status"] == "revoked"
    usage = (await client.get("/v1/usage", params={"group_by": "day"}, headers=dev)).json()
    assert usage["tenant"] == "acme" and usage["data"] == []
    audit = (await client.get("/v1/audit", headers=dev)).json()["data"]
    assert audit[0]["action"] == "key.revoke"
    assert (await client.delete("/v1/tenants/globex", headers=ROOT)).json()["deleted"] is True
    assert {t["id"] for t in (await client.get("/v1/tenants", headers=ROOT)).json()["data"]} == {"system", "acme"}


async def test_errors_are_rendered_with_status_type_and_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/tenants")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "authentication_error"
    r = await client.get("/v1/tenants", headers={"Authorization": "Bearer aiaas-0123456789ab-nope"})
    assert r.status_code == 401
    await client.post("/v1/tenants", json={"name": "acme"}, headers=ROOT)
    await client.post("/v1/tenants", json={"name": "globex"}, headers=ROOT)
    dev_key = (await client.post("/v1/keys", json={"tenant": "acme", "role": "developer"}, headers=ROOT)).json()["key"]
    dev = {"Authorization": f"Bearer {dev_key}"}
    cross = await client.get("/v1/tenants/globex", headers=dev)
    missing = await client.get("/v1/tenants/nothing", headers=dev)
    assert cross.status_code == missing.status_code == 404
    assert cross.json()["error"]["type"] == "not_found_error" and "globex" in cross.json()["error"]["message"]
    r = await client.post("/v1/keys", json={"tenant": "acme", "role": "admin"}, headers=dev)
    assert r.status_code == 403 and r.json()["error"]["param"] == "role"
    r = await client.post("/v1/tenants", json={"name": "x" * 10_000}, headers=ROOT)
    assert r.status_code == 400 and r.json()["error"]["param"] == "name"
    r = await client.get("/v1/tenants/..%2F..%2Fetc%2Fpasswd", headers=ROOT)
    assert r.status_code in (400, 404)
    r = await client.put("/v1/limits/planet/acme", json={"requests_per_minute": 1}, headers=ROOT)
    assert r.status_code == 400 and r.json()["error"]["param"] == "scope"
    r = await client.get("/v1/usage", params={"group_by": "tenant"}, headers=ROOT)
    assert r.status_code == 400 and "group_by" in r.json()["error"]["message"]
    r = await client.get("/v1/tenants/ab'%20OR%201=1", headers=ROOT)
    assert r.status_code == 400
