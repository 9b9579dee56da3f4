"""Management REST API for governance: tenants, keys, limits, budgets, model grants, usage, audit.

Thin by design: each route authenticates the bearer key, validates the body with pydantic, calls one
``GovernanceAdmin`` method in a worker thread (they do blocking database I/O) and returns its result.
Authorization, validation of names and auditing all live in the service, shared with the CLI. Errors are
``AiaasError`` subclasses, rendered by the app's exception handler.

Expects ``request.app.state.governance`` (a ``DbGovernance``) and ``request.app.state.governance_admin``
(a ``GovernanceAdmin``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from aiaas.service.governance.admin import GovernanceAdmin, ModelOwnerLookup
from aiaas.service.governance.base import Principal

router = APIRouter(prefix="/v1", tags=["governance"])
T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # what the schema says: no 0 for false, no "5" for 5


class TenantCreate(_Body):
    name: str


class KeyCreate(_Body):
    tenant: str
    role: str = "user"
    name: str | None = None
    models: list[str] | None = None  # allow-list; None = every model the tenant can see
    expires_days: float | None = None


class LimitsBody(_Body):
    requests_per_minute: int | None = None
    units_per_minute: float | None = None
    concurrency: int | None = None


class BudgetBody(_Body):
    limit: float | None  # None removes the budget
    period: str = "month"  # day | month | total


class OwnerBody(_Body):
    owner: str | None = None  # tenant id; None = no owner
    public: bool = False


async def _call(request: Request, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    client = request.client.host if request.client is not None else None
    principal: Principal = await request.app.state.governance.authenticate(request.headers.get("authorization"), client)
    return await run_in_threadpool(method, principal, *args, **kwargs)


def _admin(request: Request) -> GovernanceAdmin:
    admin: GovernanceAdmin = request.app.state.governance_admin
    return admin


@router.post("/tenants", status_code=201)
async def create_tenant(request: Request, body: TenantCreate) -> dict[str, Any]:
    return await _call(request, _admin(request).create_tenant, body.name)


@router.get("/tenants")
async def list_tenants(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": await _call(request, _admin(request).list_tenants)}


@router.get("/tenants/{tenant}")
async def get_tenant(request: Request, tenant: str) -> dict[str, Any]:
    return await _call(request, _admin(request).get_tenant, tenant)


@router.delete("/tenants/{tenant}")
async def delete_tenant(request: Request, tenant: str) -> dict[str, Any]:
    return await _call(request, _admin(request).delete_tenant, tenant)


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: KeyCreate) -> dict[str, Any]:
    return await _call(
        request,
        _admin(request).create_key,
        body.tenant,
        body.role,
        name=body.name,
        models=body.models,
        expires_days=body.expires_days,
    )


@router.get("/keys")
async def list_keys(request: Request, tenant: str | None = None) -> dict[str, Any]:
    return {"object": "list", "data": await _call(request, _admin(request).list_keys, tenant)}


@router.get("/keys/{key_id}")
async def get_key(request: Request, key_id: str) -> dict[str, Any]:
    return await _call(request, _admin(request).get_key, key_id)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
    return await _call(request, _admin(request).revoke_key, key_id)


@router.post("/keys/{key_id}/rotate", status_code=201)
async def rotate_key(request: Request, key_id: str) -> dict[str, Any]:
    return await _call(request, _admin(request).rotate_key, key_id)


@router.put("/limits/{scope}/{subject}")
async def set_limits(request: Request, scope: str, subject: str, body: LimitsBody) -> dict[str, Any]:
    return await _call(
        request,
        _admin(request).set_limits,
        scope,
        subject,
        rpm=body.requests_per_minute,
        upm=body.units_per_minute,
        concurrency=body.concurrency,
    )


@router.get("/limits/{scope}/{subject}")
async def get_limits(request: Request, scope: str, subject: str) -> dict[str, Any]:
    return await _call(request, _admin(request).get_limits, scope, subject)


@router.put("/budgets/{scope}/{subject}")
async def set_budget(request: Request, scope: str, subject: str, body: BudgetBody) -> dict[str, Any]:
    return await _call(request, _admin(request).set_budget, scope, subject, amount=body.limit, period=body.period)


@router.get("/budgets/{scope}/{subject}")
async def get_budget(request: Request, scope: str, subject: str) -> dict[str, Any]:
    return await _call(request, _admin(request).get_budget, scope, subject)


def _declared_owner(request: Request) -> ModelOwnerLookup | None:
    """Ownership declared by the models' own configs (``owner:`` in model.yaml), when the app serves models."""
    services = getattr(request.app.state, "services", None)
    return services.control.declared_owner if services is not None else None


@router.post("/models/{model}/grants/{tenant}")
async def grant_model(request: Request, model: str, tenant: str) -> dict[str, Any]:
    return await _call(request, _admin(request).grant_model, model, tenant, declared=_declared_owner(request))


@router.delete("/models/{model}/grants/{tenant}")
async def revoke_model_grant(request: Request, model: str, tenant: str) -> dict[str, Any]:
    return await _call(request, _admin(request).revoke_model_grant, model, tenant, declared=_declared_owner(request))


@router.put("/models/{model}/owner")
async def set_model_owner(request: Request, model: str, body: OwnerBody) -> dict[str, Any]:
    return await _call(request, _admin(request).set_model_owner, model, body.owner, body.public)


@router.get("/usage")
async def usage(
    request: Request,
    start: str | None = None,
    end: str | None = None,
    group_by: str = "model",
    tenant: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    return await _call(request, _admin(request).usage, tenant=tenant, start=start, end=end, group_by=group_by, key=key)


@router.get("/audit")
async def audit(
    request: Request,
    tenant: str | None = None,
    action: str | None = None,
    start: str | None = None,
    end: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    data = await _call(request, _admin(request).audit, tenant=tenant, action=action, start=start, end=end, limit=limit)
    return {"object": "list", "data": data}
