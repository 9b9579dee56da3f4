"""Tenants, keys, limits and budgets (admins for every tenant, developers for their own; users get a 403).
Every action is one ``GovernanceAdmin`` call, which checks the role and tenant and writes the audit log; a new
or rotated key's secret appears once, on the page that created it, and is never stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form
from starlette.responses import RedirectResponse, Response

from aiaas.errors import InvalidInput
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.ui.web import Console, PageRoute, checked, console

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _admin(ctx: Console) -> GovernanceAdmin:
    ctx.need("admin", "developer")
    admin = ctx.services.governance_admin
    if admin is None:
        raise InvalidInput("keys need the database governance (AIAAS_GOVERNANCE=db)")
    return admin


def _number(value: str, name: str, integer: bool = False) -> float | int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value) if integer else float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a{'n integer' if integer else ' number'}, got {value[:40]!r}") from None


async def _page(ctx: Console, secret: dict[str, Any] | None = None, message: str = "") -> Response:
    admin = _admin(ctx)
    tenants = await ctx.call(admin.list_tenants)
    keys = await ctx.call(admin.list_keys, None)
    return ctx.render(
        "keys.html",
        tenants=tenants,
        keys=keys,
        secret=secret,
        message=message or ctx.request.query_params.get("msg", ""),
    )


@router.get("/keys")
async def keys_page(ctx: Console = Depends(console)) -> Response:
    return await _page(ctx)


@router.post("/tenants")
async def create_tenant(ctx: Console = Depends(checked), name: str = Form(...)) -> Response:
    await ctx.call(_admin(ctx).create_tenant, name.strip())
    return RedirectResponse(f"/ui/keys?msg=tenant+{name.strip()}+created", status_code=303)


@router.post("/keys")
async def create_key(
    ctx: Console = Depends(checked),
    tenant: str = Form(...),
    role: str = Form("user"),
    name: str = Form(""),
    models: str = Form(""),
    expires_days: str = Form(""),
) -> Response:
    allow = [m.strip() for m in models.split(",") if m.strip()] or None
    info = await ctx.call(
        _admin(ctx).create_key,
        tenant,
        role,
        name=name.strip() or None,
        models=allow,
        expires_days=_number(expires_days, "expires_days"),
    )
    return await _page(ctx, secret=info, message=f"key {info['id']} created")


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, ctx: Console = Depends(checked)) -> Response:
    await ctx.call(_admin(ctx).revoke_key, key_id)
    return RedirectResponse(f"/ui/keys?msg=key+{key_id}+revoked", status_code=303)


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, ctx: Console = Depends(checked)) -> Response:
    info = await ctx.call(_admin(ctx).rotate_key, key_id)
    return await _page(ctx, secret=info, message=f"key {key_id} rotated to {info['id']} (the old key is revoked)")


@router.post("/limits")
async def set_limits(
    ctx: Console = Depends(checked),
    scope: str = Form(...),
    subject: str = Form(...),
    rpm: str = Form(""),
    upm: str = Form(""),
    concurrency: str = Form(""),
) -> Response:
    await ctx.call(
        _admin(ctx).set_limits,
        scope,
        subject.strip(),
        rpm=_number(rpm, "requests per minute", True),
        upm=_number(upm, "units per minute"),
        concurrency=_number(concurrency, "concurrency", True),
    )
    return RedirectResponse(f"/ui/keys?msg=limits+of+{scope}+{subject.strip()}+set", status_code=303)


@router.post("/budgets")
async def set_budget(
    ctx: Console = Depends(checked),
    scope: str = Form(...),
    subject: str = Form(...),
    limit: str = Form(""),
    period: str = Form("month"),
) -> Response:
    await ctx.call(_admin(ctx).set_budget, scope, subject.strip(), amount=_number(limit, "limit"), period=period)
    return RedirectResponse(f"/ui/keys?msg=budget+of+{scope}+{subject.strip()}+set", status_code=303)
