"""Operational routes: Prometheus metrics and a plain liveness probe."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from aiaas.api.deps import principal, services
from aiaas.service.metrics_view import exposition, model_visibility

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Models the scraper may not see are summed under ``model="_private"`` (docs/metrics.md): an admin key
    sees every model, a tenant's key its own and public ones, no key (``metrics_require_key`` false) public ones."""
    svc = services(request)
    p = None
    if svc.settings.metrics_require_key or request.headers.get("authorization"):
        p = await principal(request)
    visible = None if p is not None and p.is_admin else model_visibility(svc.models, svc.governance, p)
    return Response(exposition(svc.metrics, visible), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", summary="Liveness (no key needed)")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
