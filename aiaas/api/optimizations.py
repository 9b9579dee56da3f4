"""``/v1/optimizations``: create, list, get (state, recent events, report), cancel, events and logs of
optimization jobs. Thin: authenticate, call one ``OptimizationsService`` method in a worker thread (creating an
optimization reads the evaluation rows and runs the baseline on a few of them), return its result."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from aiaas.api.deps import principal, services
from aiaas.errors import ServiceUnavailable
from aiaas.service.jobs import LOG_TAIL_DEFAULT
from aiaas.service.optimizations import OptimizationsService

router = APIRouter(prefix="/v1/optimizations", tags=["optimization"])


def _opt(request: Request) -> OptimizationsService:
    svc: OptimizationsService | None = services(request).optimizations
    if svc is None:
        raise ServiceUnavailable("optimizations need the database-backed governance (AIAAS_GOVERNANCE=db)")
    return svc


@router.post("", status_code=201)
async def create_optimization(request: Request, body: Any = Body(...)) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_opt(request).create, p, body)


@router.get("")
async def list_optimizations(request: Request, status: str | None = None, limit: int = 20, after: str | None = None) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_opt(request).list, p, status, limit, after)


@router.get("/{job_id}")
async def get_optimization(request: Request, job_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_opt(request).get, p, job_id)


@router.post("/{job_id}/cancel")
async def cancel_optimization(request: Request, job_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_opt(request).cancel, p, job_id)


@router.get("/{job_id}/events")
async def optimization_events(
    request: Request, job_id: str, after: int = 0, limit: int = 100, level: str | None = None, type: str | None = None
) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_opt(request).events, p, job_id, after, limit, level, type)


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
async def optimization_logs(request: Request, job_id: str, tail: int = LOG_TAIL_DEFAULT) -> PlainTextResponse:
    p = await principal(request)
    return PlainTextResponse(await run_in_threadpool(_opt(request).logs, p, job_id, tail))
