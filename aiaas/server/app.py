"""The application: builds the services once, wires the routers, and runs startup and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import FastAPI

from aiaas import __version__, ui
from aiaas.api import docs, errors, ops, spec, v2
from aiaas.api import files as files_api
from aiaas.api import governance as governance_api
from aiaas.api import jobs as jobs_api
from aiaas.api import openai as openai_api
from aiaas.api import replicas as replicas_api
from aiaas.api import resident as resident_api
from aiaas.placement.factory import PlacementOptions
from aiaas.registry import ModelRepository
from aiaas.runtime import RuntimeContext
from aiaas.server import fastpath, tracing
from aiaas.server.adminkey import ensure_admin_key
from aiaas.server.bodylimit import BodyLimits
from aiaas.server.fastpath import App
from aiaas.server.observe import AccessLog, observed
from aiaas.service.catalog import CatalogRunner
from aiaas.service.container import Services
from aiaas.service.control import ModelControl
from aiaas.service.dataplane import DataPlane
from aiaas.service.files import FilesService
from aiaas.service.governance import AdminKeyGovernance, Governance, open_governance
from aiaas.service.governance.setup import resilience_options
from aiaas.service.jobengine import JobEngine
from aiaas.service.jobs import DbJobStore, JobsService
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager
from aiaas.service.opsmetrics import loaded_engines
from aiaas.service.optimizations import OptimizationsService
from aiaas.service.replica_metrics import ReplicaCollector
from aiaas.settings import Settings
from aiaas.training.uploadcheck import UploadLimits

log = logging.getLogger("aiaas.server")


def build_services(settings: Settings, governance: Governance | None = None) -> Services:
    settings.home.mkdir(parents=True, exist_ok=True)
    repository = ModelRepository(settings.models_dir)
    repository.ensure()
    metrics = Metrics()
    store = admin = None
    if governance is None:
        key = ensure_admin_key(settings).key
        if settings.governance == "off":
            governance = AdminKeyGovernance(key)
        else:
            store, governance, admin = open_governance(
                settings,
                key,
                key_cache_ttl_s=settings.key_cache_ttl_s,
                refresh_s=settings.governance_refresh_s,
                usage_flush_s=settings.usage_flush_s,
                budget_mode=settings.budget_mode,
                redis_prefix=settings.redis_prefix,
                concurrency_lease_s=settings.concurrency_lease_s,
                **resilience_options(settings),
            )
    context = RuntimeContext(
        default_intra_op_threads=settings.default_intra_op_threads, extra={"llm_threads": settings.llm_threads}
    )
    placement = PlacementOptions(settings.python_placement, settings.ray_address, settings.ray_namespace)
    models = ModelManager(repository, context, metrics, placement)
    metrics.registry.register(ReplicaCollector(models))
    metrics.ops.watch_engines(partial(loaded_engines, models))  # LLM running/waiting/KV gauges at scrape time
    dataplane = DataPlane(models, governance, metrics)
    control = ModelControl(models, governance)
    files = jobs = optimizations = None
    if store is not None:
        upload_limits = UploadLimits(
            settings.max_upload_bytes,
            settings.max_upload_columns,
            settings.max_upload_nesting,
            settings.upload_validation_s,
        )
        files = FilesService(store, settings.home / "files", settings.max_upload_bytes, upload_limits)
        engine = JobEngine(
            DbJobStore(store),
            models,
            settings.home / "jobs",
            settings.training_cores or None,
            torch_extensions_dir=settings.torch_extensions_dir,
        )
        jobs = JobsService(engine, files, control, ray_address=settings.ray_address)
        optimizations = OptimizationsService(jobs, default_min_speedup=settings.optimize_min_speedup)
    return Services(settings, metrics, governance, models, dataplane, control, store, admin, files, jobs, optimizations)


async def _start_grpc(svc: Services) -> Any:
    """The gRPC server on the app's loop when ``grpc_port`` is set (grpcio is imported only then)."""
    if not svc.settings.grpc_port:
        return None
    from aiaas.server.grpc_server import GrpcServer
    from aiaas.server.tls import tls_from

    server = GrpcServer(svc, tls_from(svc.settings))
    await server.start()
    return server


def create_app(
    settings: Settings | None = None, governance: Governance | None = None, tracer_provider: Any = None
) -> App:
    settings = settings or Settings()
    svc = build_services(settings, governance)
    tracer_provider = tracer_provider or tracing.tracer_provider(settings)  # AIAAS_OTEL_ENDPOINT (server/tracing.py)
    if tracer_provider is not None:
        svc.dataplane.tracer = tracer_provider.get_tracer("aiaas")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.governance.start()
        if settings.load_on_start:
            await svc.models.load_all()
        catalog = CatalogRunner(settings, svc.models)
        builder = asyncio.create_task(catalog.run()) if settings.catalog_names() != [] else None
        watcher = (
            asyncio.create_task(svc.models.watch(settings.repository_poll_s))
            if settings.repository_poll_s > 0
            else None
        )
        if svc.jobs is not None:  # resume the training jobs that were running when the server stopped
            await asyncio.to_thread(svc.jobs.start, asyncio.get_running_loop())
        grpc_server = await _start_grpc(svc)
        svc.ready = True
        log.info("aiaas ready: %d model(s) in %s", len(svc.models.models), settings.models_dir)
        try:
            yield
        finally:
            svc.ready = False
            if grpc_server is not None:  # drains gRPC streams while the models still run
                await grpc_server.stop(settings.graceful_shutdown_s)
            if svc.jobs is not None:  # stops running jobs, leaving them 'running' for the next start to resume
                await asyncio.to_thread(svc.jobs.stop)
            if watcher is not None:
                watcher.cancel()
            if builder is not None:
                builder.cancel()
                await catalog.stop()
            await svc.models.close()  # drains every model's queue
            await svc.governance.close()  # flushes buffered usage
            if svc.store is not None:
                svc.store.dispose()

    app = App(
        title="aiaas",
        version=__version__,
        description="AI models as a service: KServe V2 inference, model repository and operations.",
        lifespan=lifespan,
        telemetry={"tracer_provider": tracer_provider} if tracer_provider is not None else None,
        docs_url=None,  # served from the package by docs.install (FastAPI's default loads them from a CDN)
        redoc_url=None,
    )
    app.body_limits = BodyLimits(settings)
    if observed(settings):  # request ids + access log (AIAAS_LOG_FORMAT=json or AIAAS_ACCESS_LOG=1)
        app.access_log = AccessLog()
    fastpath.install(app, settings.fast_path)  # AIAAS_FAST_PATH: V2 infer without routing (server/fastpath.py)
    app.state.services = svc
    app.state.governance = svc.governance
    app.state.governance_admin = svc.governance_admin
    errors.install(app)
    docs.install(app)
    spec.document(app)
    app.include_router(v2.router)
    app.include_router(ops.router)
    app.include_router(replicas_api.router)
    app.include_router(resident_api.router)
    app.include_router(openai_api.router)
    if svc.governance_admin is not None:
        app.include_router(governance_api.router)
    if svc.files is not None:
        app.include_router(files_api.router)
        app.include_router(jobs_api.training_router)
        app.include_router(jobs_api.optimizations_router)
    ui.mount(app, svc)  # the web console at /ui (aiaas.ui)
    return app
