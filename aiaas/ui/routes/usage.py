"""Usage and cost: requests, units and cost over a period, grouped by model, key or day; CSV export; budgets
against their limits. Every number comes from ``GovernanceAdmin.usage`` with the caller's own scope (a user key
sees its own usage, a developer its tenant's, an admin any tenant's)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from aiaas.errors import AiaasError, InvalidInput
from aiaas.store.models import utcnow
from aiaas.ui.web import Console, PageRoute, console

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)
PERIODS = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
COLUMNS = ("requests", "errors", "units_in", "units_out", "compute_s", "cost", "avg_latency_ms")


def _query(
    ctx: Console, period: str, group_by: str, tenant: str | None, start: str | None, end: str | None
) -> dict[str, Any]:
    admin = ctx.services.governance_admin
    if admin is None:
        raise InvalidInput("usage needs the database governance (AIAAS_GOVERNANCE=db)")
    if not start:
        if period not in PERIODS:
            raise InvalidInput(f"period must be one of {', '.join(PERIODS)} (or give a start date)")
        start = (utcnow() - PERIODS[period]).isoformat()
    return admin.usage(ctx.principal, tenant=tenant or None, start=start, end=end or None, group_by=group_by)


def _budgets(ctx: Console, tenant: str | None) -> list[dict[str, Any]]:
    admin = ctx.services.governance_admin
    assert admin is not None
    subjects = [("key", ctx.principal.key_id)]
    if ctx.principal.role != "user":
        subjects.insert(0, ("tenant", tenant or ctx.principal.tenant_id))
    out = []
    for scope, subject in subjects:
        try:
            info = admin.get_budget(ctx.principal, scope, subject)
        except AiaasError:
            continue
        if info.get("limit") is not None:
            info["used"] = min(1.0, (info["spent"] or 0.0) / info["limit"]) if info["limit"] else 1.0
            out.append(info)
    return out


@router.get("/usage")
async def usage_page(
    ctx: Console = Depends(console),
    period: str = "30d",
    group_by: str = "model",
    tenant: str = "",
    start: str = "",
    end: str = "",
) -> Response:
    result = await ctx.call(lambda p: _query(ctx, period, group_by, tenant, start, end))
    budgets = await ctx.call(lambda p: _budgets(ctx, result["tenant"]))
    tenants = []
    if ctx.principal.is_admin and ctx.services.governance_admin is not None:
        tenants = [t["id"] for t in await ctx.call(ctx.services.governance_admin.list_tenants)]
    rows = result["data"]
    series = None
    if group_by == "day" and rows:
        days = [datetime.fromisoformat(str(r["day"])[:10]).replace(tzinfo=UTC).timestamp() for r in rows]
        series = json.dumps({"t": days, "requests": [r["requests"] for r in rows], "cost": [r["cost"] for r in rows]})
    totals = {c: sum(r[c] for r in rows) for c in COLUMNS if c != "avg_latency_ms"}
    return ctx.render(
        "usage.html",
        result=result,
        rows=rows,
        columns=COLUMNS,
        totals=totals,
        budgets=budgets,
        period=period,
        group_by=group_by,
        tenant=tenant,
        tenants=tenants,
        start=start,
        end=end,
        series=series,
        query=ctx.request.url.query,
    )


@router.get("/usage.csv")
async def usage_csv(
    ctx: Console = Depends(console),
    period: str = "30d",
    group_by: str = "model",
    tenant: str = "",
    start: str = "",
    end: str = "",
) -> Response:
    result = await ctx.call(lambda p: _query(ctx, period, group_by, tenant, start, end))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([group_by, *COLUMNS])
    for r in result["data"]:
        writer.writerow([r[group_by], *(r[c] for c in COLUMNS)])
    name = f"aiaas-usage-{group_by}-{result['start'][:10]}.csv"
    return Response(
        buf.getvalue(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
