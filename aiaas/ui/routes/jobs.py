"""Jobs: training and optimization jobs with live progress (Server-Sent Events), the metric curve, events,
logs and cancel; a training job started from an uploaded file; an optimization's report table.

Everything goes through ``FilesService``, ``JobsService`` and ``OptimizationsService`` as the API does (they
check roles and tenants: a ``user`` key gets their 403)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response, StreamingResponse

from aiaas.errors import InvalidInput, NotFound, PayloadTooLarge
from aiaas.jobs.states import TERMINAL
from aiaas.service.files import FilesService
from aiaas.service.jobs import JobsService
from aiaas.types.jobs import TrainingJob
from aiaas.ui.web import Console, PageRoute, checked, console

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)
STREAM_POLL_S = 1.0


def _jobs(ctx: Console) -> tuple[JobsService, FilesService]:
    ctx.need("admin", "developer")
    if ctx.services.jobs is None or ctx.services.files is None:
        raise InvalidInput("jobs need the database governance (AIAAS_GOVERNANCE=db)")
    return ctx.services.jobs, ctx.services.files


def _curve(events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Metric events -> uPlot columns over the step (x): every numeric series they carry."""
    pts = [e["data"] for e in events if e.get("type") == "metrics" and isinstance(e.get("data"), dict)]
    pts = [d for d in pts if isinstance(d.get("step"), int | float)]
    names = sorted(
        {
            k
            for d in pts
            for k, v in d.items()
            if isinstance(v, int | float) and k not in ("step", "epoch", "total_steps", "restart")
        }
    )
    return {"x": [d["step"] for d in pts], **{n: [d.get(n) for d in pts] for n in names}}


@router.get("/jobs")
async def jobs_page(ctx: Console = Depends(console)) -> Response:
    jobs, _ = _jobs(ctx)
    training = (await ctx.call(jobs.list, None, 100, None)).model_dump(mode="json")["data"]
    optimizations = []
    if ctx.services.optimizations is not None:
        optimizations = (await ctx.call(ctx.services.optimizations.list, None, 100, None)).model_dump(mode="json")[
            "data"
        ]
    return ctx.render("jobs.html", training=training, optimizations=optimizations)


@router.post("/jobs")
async def create_job(ctx: Console = Depends(checked)) -> Response:
    """A multipart form: the training file plus the job's fields; the file is validated as ``POST /v1/files``
    validates it, then the job as ``POST /v1/training/jobs`` does."""
    jobs, files = _jobs(ctx)
    form = await ctx.request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("choose a training file (CSV, JSONL, NPZ or Parquet)")
    try:
        hp = json.loads(str(form.get("hyperparameters") or "{}"))
    except ValueError as e:
        raise InvalidInput(f"hyperparameters must be a JSON object: {e}") from None
    if not isinstance(hp, dict):
        raise InvalidInput("hyperparameters must be a JSON object")
    if form.get("label"):
        hp["label"] = str(form["label"])
    if form.get("epochs"):
        hp["epochs"] = int(str(form["epochs"]))

    def stage_and_submit(p: Any) -> TrainingJob:
        with files.staging(p) as staged:
            with open(staged, "wb") as out:
                upload.file.seek(0)
                shutil.copyfileobj(upload.file, out)
            if staged.stat().st_size > files.max_bytes:
                raise PayloadTooLarge(f"the file exceeds the upload limit of {files.max_bytes} bytes")
            info = files.add(p, staged, upload.filename, None, "training")
        body = {
            "recipe": str(form.get("recipe") or "tabular"),
            "model": str(form.get("model") or "").strip(),
            "training_file": info["id"],
            "hyperparameters": hp,
            "resources": {"workers": 1, "threads_per_worker": 1},
        }
        return jobs.create(p, body)

    job = await ctx.call(stage_and_submit)
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)


async def _job(ctx: Console, job_id: str, kind: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    jobs, _ = _jobs(ctx)
    if kind == "optimization" and ctx.services.optimizations is not None:
        detail = (await ctx.call(ctx.services.optimizations.get, job_id)).model_dump(mode="json")
        return "optimization", detail, detail.get("events", [])
    info = (await ctx.call(jobs.get, job_id)).model_dump(mode="json")
    events = (await ctx.call(jobs.events, job_id, 0, 1000, None, None)).model_dump(mode="json")["data"]
    return "training", info, events


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, ctx: Console = Depends(console), kind: str = "training") -> Response:
    kind, job, events = await _job(ctx, job_id, kind)
    logs = ""
    if kind == "training":
        with contextlib.suppress(NotFound):  # no log before the job's first process starts
            logs = await ctx.call(ctx.services.jobs.logs, job_id, None, 8000)  # type: ignore[union-attr]
    return ctx.render(
        "job.html",
        kind=kind,
        job=job,
        events=events[-200:],
        curve=json.dumps(_curve(events)),
        logs=logs,
        terminal=job["status"] in TERMINAL,
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, ctx: Console = Depends(checked), kind: str = "training") -> Response:
    jobs, _ = _jobs(ctx)
    if kind == "optimization" and ctx.services.optimizations is not None:
        await ctx.call(ctx.services.optimizations.cancel, job_id)
    else:
        await ctx.call(jobs.cancel, job_id)
    return RedirectResponse(f"/ui/jobs/{job_id}?kind={kind}", status_code=303)


@router.get("/jobs/{job_id}/stream")
async def job_stream(job_id: str, ctx: Console = Depends(console), kind: str = "training") -> Response:
    """SSE: one ``job`` event per change (status, progress, the curve so far) and one ``log`` event per new
    job event, until the job ends (then ``end``)."""
    await _job(ctx, job_id, kind)  # 404/403 before the stream opens

    async def events() -> AsyncIterator[bytes]:
        last, seq = None, 0
        while True:
            if await ctx.request.is_disconnected():
                return
            _, job, evs = await _job(ctx, job_id, kind)
            new = [e for e in evs if e.get("seq", 0) > seq]
            for e in new:
                yield b"event: log\ndata: " + json.dumps(e).encode() + b"\n\n"
            seq = max([seq, *(e.get("seq", 0) for e in new)])
            state = json.dumps(
                {
                    "status": job["status"],
                    "sub_status": job.get("sub_status"),
                    "progress": job.get("progress"),
                    "reason": job.get("reason"),
                    "curve": _curve(evs),
                }
            )
            if state != last:
                yield b"event: job\ndata: " + state.encode() + b"\n\n"
                last = state
            if job["status"] in TERMINAL:
                yield b"event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(STREAM_POLL_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
