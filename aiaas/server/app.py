"""The application: builds the services once, wires the routers, and runs startup and graceful shutdown."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

from aiaas import __version__
from aiaas.api import errors, ops, v2
from aiaas.registry import ModelRepository
from aiaas.runtime import RuntimeContext
from aiaas.server.adminkey import ensure_admin_key
from aiaas.service.control import ModelControl
from aiaas.service.dataplane import DataPlane
from aiaas.service.governance import AdminKeyGovernance, Governance
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager
from aiaas.settings import Settings

log = logging.getLogger("aiaas.server")


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    governance: Governance
    models: ModelManager
    dataplane: DataPlane
    control: ModelControl
    ready: bool = False


def build_services(settings: Settings, governance: Governance | None = None) -> Services:
    settings.home.mkdir(parents=True, exist_ok=True)
    repository = ModelRepository(settings.models_dir)
    repository.ensure()
    metrics = Metrics()
    if governance is None:
        governance = AdminKeyGovernance(ensure_admin_key(settings).key)
    context = RuntimeContext(default_intra_op_threads=settings.default_intra_op_threads)
    models = ModelManager(repository, context, metrics)
    dataplane = DataPlane(models, governance, metrics)
    return Services(settings, metrics, governance, models, dataplane, ModelControl(models, governance))


def create_app(settings: Settings | None = None, governance: Governance | None = None) -> FastAPI:
    settings = settings or Settings()
    svc = build_services(settings, governance)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.governance.start()
        if settings.load_on_start:
            await svc.models.load_all()
        svc.ready = True
        log.info("aiaas ready: %d model(s) in %s", len(svc.models.models), settings.models_dir)
        try:
            yield
        finally:
            svc.ready = False
            await svc.models.close()  # drains every model's queue
            await svc.governance.close()

    app = FastAPI(
        title="aiaas",
        version=__version__,
        description="AI models as a service: KServe V2 inference, model repository and operations.",
        lifespan=lifespan,
    )
    app.state.services = svc
    errors.install(app)
    app.include_router(v2.router)
    app.include_router(ops.router)
    return app
