"""One router factory for the job API families: ``/v1/training/jobs`` and ``/v1/optimizations``.

Thin: authenticate, call one method of the family's service (``aiaas.service.jobengine.JobFamily``) in a worker
thread (database and disk I/O; creating a job parses its data in full, or runs an optimization's baseline),
return its pydantic model. Tenancy and validation live in the services; what differs between the families is
a flag here: training jobs have ranks (``logs?rank=``) and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from aiaas.api.deps import principal, services
from aiaas.errors import ServiceUnavailable
from aiaas.service.container import Services
from aiaas.service.jobengine import LOG_TAIL_DEFAULT, JobFamily
from aiaas.service.jobs import JobsService
from aiaas.types.jobs import (
    CheckpointList,
    EventList,
    Job,
    JobList,
    OptimizationJob,
    OptimizationJobDetail,
    TrainingJob,
)

DB_INT_MAX = 2**63 - 1  # paging cursors and counts beyond a 64-bit column are a client error, not a database one
MAX_RANK = 65_535  # a rank beyond any job's workers, refused before the service looks


def job_router(
    prefix: str,
    tag: str,
    family: Callable[[Services], JobFamily[Any] | None],
    missing: str,  # the 503 message when the server has no such service (no database)
    detail: type[Job],  # what get/create/cancel answer
    summary: type[Job],  # one item of a listing
    ranks: bool = False,  # training jobs: logs per rank and checkpoints
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])

    def svc(request: Request) -> JobFamily[Any]:
        found = family(services(request))
        if found is None:
            raise ServiceUnavailable(missing)
        return found

    @router.post("", status_code=201, response_model=detail)
    async def create(request: Request, body: Any = Body(...)) -> Any:
        p = await principal(request)
        return await run_in_threadpool(svc(request).create, p, body)

    @router.get("", response_model=JobList[summary])  # type: ignore[valid-type]
    async def list_jobs(request: Request, status: str | None = None, limit: int = 20, after: str | None = None) -> Any:
        p = await principal(request)
        return await run_in_threadpool(svc(request).list, p, status, limit, after)

    @router.get("/{job_id}", response_model=detail)
    async def get(request: Request, job_id: str) -> Any:
        p = await principal(request)
        return await run_in_threadpool(svc(request).get, p, job_id)

    @router.post("/{job_id}/cancel", response_model=detail)
    async def cancel(request: Request, job_id: str) -> Any:
        p = await principal(request)
        return await run_in_threadpool(svc(request).cancel, p, job_id)

    @router.get("/{job_id}/events")
    async def events(
        request: Request,
        job_id: str,
        after: int = Query(0, ge=0, le=DB_INT_MAX),
        limit: int = Query(100, ge=0, le=DB_INT_MAX),
        level: str | None = None,
        type: str | None = None,
    ) -> EventList:
        p = await principal(request)
        return await run_in_threadpool(svc(request).events, p, job_id, after, limit, level, type)

    if ranks:

        @router.get("/{job_id}/checkpoints")
        async def checkpoints(request: Request, job_id: str) -> CheckpointList:
            p = await principal(request)
            jobs = svc(request)
            assert isinstance(jobs, JobsService)
            return await run_in_threadpool(jobs.checkpoints, p, job_id)

        @router.get("/{job_id}/logs", response_class=PlainTextResponse)
        async def rank_logs(
            request: Request,
            job_id: str,
            rank: int | None = Query(None, ge=0, le=MAX_RANK),
            tail: int = Query(LOG_TAIL_DEFAULT, ge=0, le=DB_INT_MAX),
        ) -> PlainTextResponse:
            p = await principal(request)
            jobs = svc(request)
            assert isinstance(jobs, JobsService)
            return PlainTextResponse(await run_in_threadpool(jobs.logs, p, job_id, rank, tail))

    else:

        @router.get("/{job_id}/logs", response_class=PlainTextResponse)
        async def logs(
            request: Request, job_id: str, tail: int = Query(LOG_TAIL_DEFAULT, ge=0, le=DB_INT_MAX)
        ) -> PlainTextResponse:
            p = await principal(request)
            return PlainTextResponse(await run_in_threadpool(svc(request).launcher_logs, p, job_id, tail))

    return router


NO_DATABASE = "need the database-backed governance (AIAAS_GOVERNANCE=db)"
training_router = job_router(
    "/v1/training/jobs",
    "training",
    lambda s: s.jobs,
    f"training jobs {NO_DATABASE}",
    TrainingJob,
    TrainingJob,
    ranks=True,
)
optimizations_router = job_router(
    "/v1/optimizations",
    "optimization",
    lambda s: s.optimizations,
    f"optimizations {NO_DATABASE}",
    OptimizationJobDetail,
    OptimizationJob,
)
