"""Operational routes: Prometheus metrics and a plain liveness probe."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from aiaas.api.deps import principal, services

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    svc = services(request)
    if svc.settings.metrics_require_key:
        await principal(request)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", summary="Liveness (no key needed)")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
