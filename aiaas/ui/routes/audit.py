"""Audit log with filters (admins: every tenant; developers: their own; users: 403 from the service)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from aiaas.errors import InvalidInput
from aiaas.ui.web import Console, PageRoute, console

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


@router.get("/audit")
async def audit_page(
    ctx: Console = Depends(console),
    tenant: str = "",
    action: str = "",
    start: str = "",
    end: str = "",
    limit: int = 200,
) -> Response:
    admin = ctx.services.governance_admin
    if admin is None:
        raise InvalidInput("the audit log needs the database governance (AIAAS_GOVERNANCE=db)")
    rows = await ctx.call(
        admin.audit, tenant=tenant or None, action=action or None, start=start or None, end=end or None, limit=limit
    )
    return ctx.render("audit.html", rows=rows, tenant=tenant, action=action, start=start, end=end, limit=limit)
