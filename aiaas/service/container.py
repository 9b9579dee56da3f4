"""``Services``: every service one server holds, built once by ``aiaas.server.app.build_services``.

It lives in the service layer so that the transports (``api/``, ``ui/``, gRPC) can name it without importing
the server package above them; they reach the instance through ``app.state.services``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiaas.service.control import ModelControl
from aiaas.service.dataplane import DataPlane
from aiaas.service.files import FilesService
from aiaas.service.governance import Governance
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.jobs import JobsService
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager
from aiaas.service.optimizations import OptimizationsService
from aiaas.settings import Settings
from aiaas.store.db import Store


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    governance: Governance
    models: ModelManager
    dataplane: DataPlane
    control: ModelControl
    store: Store | None = None  # the database (None with governance "off")
    governance_admin: GovernanceAdmin | None = None  # tenants, keys, limits, budgets, usage, audit
    files: FilesService | None = None  # uploaded training files (needs the store)
    jobs: JobsService | None = None  # training jobs; its Scheduler is built on first use (it imports torch)
    optimizations: OptimizationsService | None = None  # optimization jobs, on the training jobs' scheduler
    ready: bool = False
