"""``/v1/training/jobs``: create, list, get, cancel, events, checkpoints and logs of training jobs.

Thin: authenticate, call one ``JobsService`` method in a worker thread (database and disk I/O; creating a job
parses its data in full), return its result. Tenancy and validation live in ``aiaas.service.jobs``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from aiaas.api.deps import principal, services
from aiaas.errors import ServiceUnavailable
from aiaas.service.jobs import LOG_TAIL_DEFAULT, JobsService

DB_INT_MAX = 2**63 - 1  # paging cursors and counts beyond a 64-bit column are a client error, not a database one

router = APIRouter(prefix="/v1/training", tags=["training"])


def _jobs(request: Request) -> JobsService:
    jobs: JobsService | None = services(request).jobs
    if jobs is None:
        raise ServiceUnavailable("training jobs need the database-backed governance (AIAAS_GOVERNANCE=db)")
    return jobs


@router.post("/jobs", status_code=201)
async def create_job(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_jobs(request).create, p, body)


@router.get("/jobs")
async def list_jobs(request: Request, status: str | None = None, limit: int = 20, after: str | None = None) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_jobs(request).list, p, status, limit, after)


@router.get("/jobs/{job_id}")
async def get_job(request: Request, job_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_jobs(request).get, p, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_jobs(request).cancel, p, job_id)


@router.get("/jobs/{job_id}/events")
async def job_events(
    request: Request,
    job_id: str,
    after: int = Query(0, ge=0, le=DB_INT_MAX),
    limit: int = Query(100, ge=0, le=DB_INT_MAX),
    level: str | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_jobs(request).events, p, job_id, after, limit, level, type)


@router.get("/jobs/{job_id}/checkpoints")
async def job_checkpoints(request: Request, job_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_jobs(request).checkpoints, p, job_id)


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
async def job_logs(
    request: Request, job_id: str, rank: int | None = Query(None, ge=0, le=65_535), tail: int = Query(LOG_TAIL_DEFAULT, ge=0, le=DB_INT_MAX)
) -> PlainTextResponse:
    p = await principal(request)
    text = await run_in_threadpool(_jobs(request).logs, p, job_id, rank, tail)
    return PlainTextResponse(text)
