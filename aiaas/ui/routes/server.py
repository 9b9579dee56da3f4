"""Server: version, health, resident models and memory, links to /metrics and /docs."""

from __future__ import annotations

import os
import time

import psutil
from fastapi import APIRouter, Depends
from starlette.responses import Response

from aiaas.ui.web import Console, PageRoute, console

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)
STARTED = time.time()


@router.get("/server")
async def server_page(ctx: Console = Depends(console)) -> Response:
    svc = ctx.services
    proc = psutil.Process(os.getpid())
    rss = proc.memory_info().rss
    resident = []
    for name, rec in sorted(svc.models.models.items()):
        if not svc.control.visible(ctx.principal, name):
            continue
        for v, vr in sorted(rec.versions.items()):
            if vr.ready:
                cfg = vr.config
                resident.append(
                    {
                        "name": name,
                        "version": v,
                        "backend": cfg.backend if cfg else "",
                        "instances": cfg.instances if cfg else 1,
                        "loaded_at": vr.loaded_at,
                    }
                )
    vm = psutil.virtual_memory()
    return ctx.render(
        "server.html",
        ready=svc.ready,
        uptime_s=time.time() - STARTED,
        rss_mb=rss / 2**20,
        host_total_gb=vm.total / 2**30,
        host_available_gb=vm.available / 2**30,
        cpus=os.cpu_count(),
        resident=resident,
        governance=svc.settings.governance,
        catalog=svc.settings.catalog,
        metrics_key=svc.settings.metrics_require_key,
    )
