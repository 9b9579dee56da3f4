"""``GET /v2/resident``: what is loaded right now (``aiaas ps``), as Ollama's ``/api/ps``.

One row per loaded version the caller may see: state, replicas, the memory the process grew by while it
loaded, when it loaded and its request counters (``aiaas ps`` samples twice for requests/s). Not part of
KServe V2; an aiaas extension next to Triton's statistics.
"""

from __future__ import annotations

import os
import time

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiaas.api.deps import principal, services
from aiaas.service.governance import Principal
from aiaas.service.models import resident_bytes

router = APIRouter(prefix="/v2", tags=["KServe V2"])


@router.get("/resident", summary="Loaded model versions: memory, replicas, request counters (aiaas ps)")
async def resident(request: Request, p: Principal = Depends(principal)) -> Response:
    svc = services(request)
    rows = []
    for st in svc.dataplane.statistics(p, None, None)["model_stats"]:  # only what the caller may see
        vr = svc.models.models[st["name"]].versions[int(st["version"])]
        rows.append(
            {
                "name": st["name"],
                "version": st["version"],
                "state": vr.state,
                "replicas": vr.config.instances if vr.config else 1,
                "memory_bytes": vr.memory_bytes,
                "loaded_at": vr.loaded_at,
                "inference_count": st["inference_count"],
                "execution_count": st["execution_count"],
                "failures": st["inference_stats"]["fail"]["count"],
            }
        )
    body = {"time": time.time(), "pid": os.getpid(), "process_memory_bytes": resident_bytes(), "models": rows}
    return Response(orjson.dumps(body), media_type="application/json")
