"""The server's job engine and one job family's API over it.

``JobEngine`` holds the engine (``aiaas.jobs``) for the server: the database store, the scheduler (built on
first use: validating a training job imports torch, about a second and a half of CPU, so a server that never
trains never pays for it), its start and stop with the server, loading a registered version at once, the
tenancy check every job route starts with, and the audit log. ``JobFamily`` is what the two API families
(``/v1/training/jobs``, ``/v1/optimizations``) share: list, get, cancel, events and logs of one kind, answering
the pydantic models of ``aiaas.types.jobs``. The kinds add their ``create`` and their view of a job.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aiaas.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from aiaas.jobs.dbstore import DbJobStore, job_not_found
from aiaas.jobs.kinds import get_kind
from aiaas.jobs.states import ACTIVE, EVENT_LEVELS, EVENT_TYPES, STATES, TERMINAL, JobState
from aiaas.jobs.store import transition
from aiaas.service.files import require_manage
from aiaas.service.governance import Principal
from aiaas.service.governance.audit import write_audit
from aiaas.store.jobs import TrainingJobRow
from aiaas.types.jobs import EventList, Job, JobEvent, JobList

if TYPE_CHECKING:
    from aiaas.service.models import ModelManager
    from aiaas.training.launcher import Scheduler

log = logging.getLogger("aiaas.training")
MAX_PAGE = 100  # jobs per listing page
MAX_EVENTS_PAGE = 1000  # events per page
LOG_TAIL_DEFAULT = 64 * 1024  # bytes of a log returned when the request does not say
LOG_TAIL_MAX = 4 * 1024 * 1024  # the most bytes of a log one request may ask for
LOAD_TIMEOUT_S = 300.0  # a registered version must load within this, or the job still succeeds and says so

InfoT = TypeVar("InfoT", bound=Job)


def training_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def choices(value: str | None, allowed: tuple[str, ...], param: str) -> list[str] | None:
    """A comma-separated filter, each item one of ``allowed`` (400 naming the first that is not)."""
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    for v in items:
        if v not in allowed:
            raise InvalidInput(f"unknown {param} {v[:40]!r}: use one of {', '.join(allowed)}", param=param)
    return items


def check_tail(tail: int) -> None:
    if not isinstance(tail, int) or not 1 <= tail <= LOG_TAIL_MAX:
        raise InvalidInput(f"tail must be between 1 and {LOG_TAIL_MAX} bytes", param="tail")


class JobEngine:
    def __init__(
        self,
        store: DbJobStore,
        models: ModelManager,
        jobs_root: Path,
        cores: int | None = None,
        torch_extensions_dir: Path | None = None,  # strategy zero's compiled DeepSpeed ops (Settings)
    ) -> None:
        self.store = store
        self.models = models
        self.jobs_root = Path(jobs_root)
        self.cores = cores
        self.torch_extensions_dir = torch_extensions_dir
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: Scheduler | None = None
        self._running = False
        self._lock = threading.Lock()

    # -- lifecycle (the app's lifespan) -------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        """Server start (blocking): resume the jobs that were running, then run the queue. Returns the ids of
        the resumed jobs."""
        self.loop = loop
        self._running = True
        pending = self.store.list(ACTIVE)
        if self._scheduler is None and not pending:
            return []  # nothing to do: torch stays unimported until a job is created
        if not training_available() and any(j.kind == "training" for j in pending):
            log.warning("training jobs wait in the database, but torch is not installed here")
            return []
        scheduler = self.scheduler(start_loop=False, require_torch=False)
        resumed = scheduler.recover()  # before the loop starts, so resumed jobs count against the cores first
        scheduler.start()
        if resumed:
            log.info("resumed %d job(s) from their checkpoints: %s", len(resumed), ", ".join(resumed))
        return resumed

    def stop(self) -> None:
        """Server stop (blocking): running jobs are stopped and stay ``running``; the next start resumes them."""
        self._running = False
        with self._lock:
            scheduler = self._scheduler
        if scheduler is not None:
            scheduler.stop()

    def scheduler(self, start_loop: bool = True, require_torch: bool = True) -> Scheduler:
        """The scheduler, built on first use; its loop runs while the server does. Training jobs need torch;
        ONNX optimizations (``require_torch=False``) run on the same scheduler without it."""
        if require_torch and not training_available():
            raise ServiceUnavailable("training jobs need torch on the server: pip install 'aiaas[train]'")
        with self._lock:
            if self._scheduler is None:
                from aiaas.training.launcher import Scheduler

                self._scheduler = Scheduler(
                    self.store,
                    self.jobs_root,
                    cores=self.cores or None,
                    repository=self.models.repository,
                    on_registered=self._on_registered,
                    torch_extensions_dir=self.torch_extensions_dir,
                )
                if self._running and start_loop:
                    self._scheduler.start()
            return self._scheduler

    def _on_registered(self, model: str, version: int) -> None:
        """Runs in a job's monitor thread: load the new version so it serves as soon as the job succeeds."""
        if self.loop is None or self.loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.models.load(model), self.loop)
        try:
            rec = future.result(LOAD_TIMEOUT_S)
            if rec.state != "READY":
                log.warning("model %s version %d was registered but did not load: %s", model, version, rec.reason)
        except Exception:
            log.exception("model %s version %d was registered but loading it failed", model, version)

    # -- access -------------------------------------------------------------------------------------------
    def visible(self, p: Principal, job_id: str, kind: str) -> TrainingJobRow:
        """The job's row, when ``p`` may manage jobs and the job is of ``kind`` and ``p``'s tenant (or ``p``
        is an admin); the same 404 otherwise, whether or not the job exists."""
        require_manage(p, f"{kind} jobs")
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
            raise job_not_found(str(job_id), kind)
        row = self.store.row(job_id)
        if row is None or (row.kind or "training") != kind or not (p.is_admin or row.tenant_id == p.tenant_id):
            raise job_not_found(job_id, kind)
        return row

    def audit(self, p: Principal, action: str, job_id: str, tenant: str | None, details: dict[str, Any]) -> None:
        with self.store.store.session() as session:
            write_audit(session, p, action, job_id, tenant=tenant, details=details)


class JobFamily(ABC, Generic[InfoT]):
    """One kind's jobs as the API and the console see them."""

    kind: str  # the registered job kind
    noun: str  # in messages: "listing {noun}"
    launcher_label: str  # in "no {launcher_label} log for job ... yet"

    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine
        self.store = engine.store

    @abstractmethod
    def info(self, row: TrainingJobRow) -> InfoT:
        """The API's view of one job (server paths left out)."""

    @abstractmethod
    def create(self, p: Principal, body: Any) -> InfoT:
        """Validate a request of the kind and submit the job (blocking: data is read in full)."""

    def get(self, p: Principal, job_id: str) -> InfoT:
        return self.info(self.engine.visible(p, job_id, self.kind))

    def list(
        self, p: Principal, status: str | None = None, limit: int = 20, after: str | None = None
    ) -> JobList[InfoT]:
        require_manage(p, f"listing {self.noun}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", param="limit")
        states = choices(status, STATES, "status")
        cursor = self.engine.visible(p, after, self.kind) if after else None
        rows = self.store.page(None if p.is_admin else p.tenant_id, states, limit + 1, cursor, kind=self.kind)
        return JobList[InfoT](data=[self.info(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def cancel(self, p: Principal, job_id: str) -> InfoT:
        """Stop every process of the job (blocking, a few seconds at most); 409 when it already finished."""
        row = self.engine.visible(p, job_id, self.kind)
        state = JobState(row.state)
        if state in TERMINAL:
            raise Conflict(f"{self.kind} job {job_id} is already {state}")
        reason = f"cancelled by the user (key {p.key_id})"
        if training_available() or self.kind != "training":
            self.engine.scheduler(require_torch=False).cancel(job_id, reason=reason)
        else:  # nothing can run without torch: just record it
            transition(self.store, job_id, JobState.CANCELLED, sub_status=None, reason=reason)
        self.engine.audit(p, f"{self.kind}_job.cancel", job_id, row.tenant_id, {"model": row.model})
        return self.get(p, job_id)

    def events(
        self,
        p: Principal,
        job_id: str,
        after: int = 0,
        limit: int = 100,
        level: str | None = None,
        type: str | None = None,
    ) -> EventList:
        self.engine.visible(p, job_id, self.kind)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PAGE}", param="limit")
        if not isinstance(after, int) or after < 0:
            raise InvalidInput("after must be a sequence number >= 0", param="after")
        levels = choices(level, EVENT_LEVELS, "level")
        types = choices(type, EVENT_TYPES, "type")
        rows = self.store.events(job_id, after, limit + 1, levels, types)
        data = [JobEvent.model_validate(e) for e in rows[:limit]]
        return EventList(data=data, has_more=len(rows) > limit, last_seq=data[-1].seq if data else after)

    def read_log(self, row: TrainingJobRow, path: Path, what: str, tail: int) -> str:
        """The last ``tail`` bytes of one of the job's logs (404 naming ``what`` before it exists)."""
        check_tail(tail)
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - tail))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            raise NotFound(f"no {what} log for job {row.id} yet (state: {row.state})", param="rank") from None

    def launcher_logs(self, p: Principal, job_id: str, tail: int = LOG_TAIL_DEFAULT) -> str:
        """The last ``tail`` bytes of the log of the process the job launched (torchrun, the worker)."""
        row = self.engine.visible(p, job_id, self.kind)
        check_tail(tail)
        return self.read_log(row, Path(row.job_dir) / "logs" / get_kind(self.kind).log_name, self.launcher_label, tail)


def lifecycle(row: TrainingJobRow, kind_object: str) -> dict[str, Any]:
    """The fields every job view starts with (``aiaas.types.jobs.Job``)."""
    return {
        "id": row.id,
        "object": kind_object,
        "status": row.state,
        "sub_status": row.sub_status,
        "reason": row.reason,
        "owner": row.tenant_id,
        "created_at": row.created_at,
        "transitions": row.transitions or {},
    }
