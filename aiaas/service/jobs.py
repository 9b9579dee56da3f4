"""Training jobs as a service: ``DbJobStore`` (the engine's ``JobStore`` on the database) and ``JobsService``
(what the REST API and the CLI call: create, list, get, cancel, events, checkpoints, logs).

The engine (``aiaas.training``) does the work: the ``Scheduler`` validates, queues and launches torchrun, the
runners report to the store. This module adds the tenancy: a job belongs to the tenant of the key that made
it, its files must be files that tenant may see, its target model must be one the tenant owns (or a new name,
which becomes the tenant's model when the first version is registered), and a job of another tenant answers
404 exactly like a job that does not exist. Only ``admin`` and ``developer`` keys manage jobs.

Jobs have a kind (``training`` | ``optimization``, see ``aiaas.service.optimizations``): both share the table,
the scheduler and the runners, and the routes of one kind never see jobs of the other.

The scheduler is built on first use: when a job is created, or at startup when the database holds jobs to
resume or run; validating a training job imports torch (about a second and a half of CPU), so a server that
never trains never pays for it. A server without torch still serves files, answers job reads and runs ONNX
optimizations.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from aiaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ServiceUnavailable
from aiaas.service.files import FilesService, require_manage
from aiaas.service.governance import ModelRef, Principal
from aiaas.service.governance.audit import write_audit
from aiaas.store.db import Store
from aiaas.store.jobs import TrainingJobEventRow, TrainingJobRow
from aiaas.training.jobdir import JobDir
from aiaas.training.spec import JobSpec, parse_spec
from aiaas.training.store import STATES, TERMINAL, JobRecord, RunSpec

if TYPE_CHECKING:
    from aiaas.service.control import ModelControl
    from aiaas.service.models import ModelManager
    from aiaas.training.launcher import Scheduler

log = logging.getLogger("aiaas.training")
lifecycle = logging.getLogger("aiaas.jobs")  # one line per job state change (with job and event fields in JSON logs)
MAX_PAGE = 100
MAX_EVENTS_PAGE = 1000
LOG_TAIL_DEFAULT = 64 * 1024
LOG_TAIL_MAX = 4 * 1024 * 1024
LOAD_TIMEOUT_S = 300.0  # a registered version must load within this, or the job still succeeds and says so
_RECORD_FIELDS = {
    "spec", "job_dir", "state", "sub_status", "reason", "owner", "created_at", "transitions", "files", "result",
    "model_version", "restarts", "progress", "events_offset", "kind",
}  # fmt: skip


def job_not_found(job_id: str, kind: str = "training") -> NotFound:
    """The one 404 for a job that does not exist *or* belongs to another tenant (indistinguishable)."""
    return NotFound(f"no {kind} job {str(job_id)[:80]!r}", param="job_id", code="job_not_found")


def training_available() -> bool:
    return importlib.util.find_spec("torch") is not None


# -- the engine's store on the database ---------------------------------------------------------------
def _spec(kind: str, value: Any) -> RunSpec:
    """A job's spec object from its kind (optimization specs live in aiaas.optimize, imported on first use)."""
    if kind == "optimization":
        from aiaas.optimize.jobspec import OptimizationSpec

        return value if isinstance(value, OptimizationSpec) else OptimizationSpec.model_validate(value)
    return value if isinstance(value, JobSpec) else JobSpec.model_validate(value)


def _record(row: TrainingJobRow) -> JobRecord:
    kind = row.kind or "training"
    return JobRecord(
        id=row.id, kind=kind, spec=_spec(kind, row.spec), job_dir=row.job_dir, state=row.state,
        sub_status=row.sub_status, reason=row.reason, owner=row.tenant_id, created_at=row.created_at,
        transitions=dict(row.transitions or {}), files=dict(row.files or {}), result=row.result,
        model_version=row.model_version, restarts=row.restarts, progress=dict(row.progress or {}),
        events_offset=row.events_offset,
    )  # fmt: skip


def _apply(row: TrainingJobRow, field: str, value: Any) -> None:
    if field == "spec":
        spec = _spec(row.kind or "training", value)
        row.spec = spec.model_dump(mode="json")
        row.model, row.priority = spec.model, spec.priority
        row.recipe = spec.recipe if isinstance(spec, JobSpec) else str(getattr(spec, "label", row.kind))[:32]
    elif field == "owner":
        row.tenant_id = value
    elif field in ("transitions", "files", "progress"):
        row.__setattr__(field, dict(value or {}))  # a new object: SQLAlchemy sees the JSON changed
    else:
        setattr(row, field, value)


class DbJobStore:
    """``aiaas.training.store.JobStore`` on the database: one short transaction per call, safe from any thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, job: JobRecord) -> None:
        row = TrainingJobRow(id=job.id, kind=job.kind, job_dir=job.job_dir, events_offset=0, restarts=0)
        for field in _RECORD_FIELDS - {"job_dir", "kind"}:
            _apply(row, field, getattr(job, field))
        with self.store.session() as session:
            session.add(row)
        lifecycle.info("%s job %s created (%s)", job.kind, job.id, job.state, extra={"job": job.id, "event": job.state})

    def get(self, job_id: str) -> JobRecord:
        with self.store.session() as session:
            row = session.get(TrainingJobRow, job_id)
            if row is None:
                raise job_not_found(job_id)
            return _record(row)

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        unknown = set(fields) - _RECORD_FIELDS
        if unknown:
            raise AttributeError(f"JobRecord has no field {sorted(unknown)[0]!r}")
        with self.store.session() as session:
            row = session.get(TrainingJobRow, job_id, with_for_update=True)
            if row is None:
                raise job_not_found(job_id)
            before = row.state
            for k, v in fields.items():
                _apply(row, k, v)
            session.flush()
            record = _record(row)
        if "state" in fields and fields["state"] != before:
            reason = f": {record.reason}" if record.reason and record.state in ("failed", "cancelled") else ""
            lifecycle.info("%s job %s %s -> %s%s", record.kind, job_id, before, record.state, reason,
                           extra={"job": job_id, "event": record.state})  # fmt: skip
        return record

    def append_events(self, job_id: str, events: list[dict[str, Any]], events_offset: int | None = None) -> None:
        for attempt in range(5):  # two writers racing for the same seq: the loser retries with the next one
            try:
                self._append(job_id, events, events_offset)
                return
            except IntegrityError:
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def _append(self, job_id: str, events: list[dict[str, Any]], events_offset: int | None) -> None:
        with self.store.session() as session:
            # Write to the job's row first: that takes its row lock (PostgreSQL) or the write lock (SQLite) before
            # max(seq) is read, so concurrent writers of one job queue up instead of colliding on a seq.
            offset = TrainingJobRow.events_offset if events_offset is None else events_offset
            session.execute(update(TrainingJobRow).where(TrainingJobRow.id == job_id).values(events_offset=offset))
            last = session.scalar(select(func.max(TrainingJobEventRow.seq)).where(TrainingJobEventRow.job_id == job_id))
            seq = int(last or 0)
            for e in events:
                seq += 1
                session.add(
                    TrainingJobEventRow(
                        job_id=job_id, seq=seq, ts=float(e.get("ts") or time.time()),
                        level=str(e.get("level") or "info")[:16], type=str(e.get("type") or "message")[:16],
                        message=str(e.get("message") or ""), data=dict(e.get("data") or {}),
                    )
                )  # fmt: skip

    def events(
        self, job_id: str, after: int = 0, limit: int = 100, levels: Iterable[str] | None = None, types: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        stmt = select(TrainingJobEventRow).where(TrainingJobEventRow.job_id == job_id, TrainingJobEventRow.seq > after)
        if levels:
            stmt = stmt.where(TrainingJobEventRow.level.in_(list(levels)))
        if types:
            stmt = stmt.where(TrainingJobEventRow.type.in_(list(types)))
        with self.store.session() as session:
            rows = session.scalars(stmt.order_by(TrainingJobEventRow.seq).limit(limit))
            return [
                {"seq": r.seq, "ts": r.ts, "level": r.level, "type": r.type, "message": r.message, "data": r.data or {}}
                for r in rows
            ]

    def last_events(self, job_id: str, n: int, types: Iterable[str] | None = None) -> builtins.list[dict[str, Any]]:
        """The ``n`` newest events (of ``types``), oldest first."""
        stmt = select(TrainingJobEventRow).where(TrainingJobEventRow.job_id == job_id)
        if types:
            stmt = stmt.where(TrainingJobEventRow.type.in_(list(types)))
        with self.store.session() as session:
            rows = list(session.scalars(stmt.order_by(TrainingJobEventRow.seq.desc()).limit(n)))
            return [
                {"seq": r.seq, "ts": r.ts, "level": r.level, "type": r.type, "message": r.message, "data": r.data or {}}
                for r in reversed(rows)
            ]

    def list(self, states: Iterable[str] | None = None) -> list[JobRecord]:
        stmt = select(TrainingJobRow)
        if states is not None:
            stmt = stmt.where(TrainingJobRow.state.in_(list(states)))
        with self.store.session() as session:
            return [_record(r) for r in session.scalars(stmt.order_by(TrainingJobRow.created_at, TrainingJobRow.id))]

    def set_file_ids(self, job_id: str, training: str | None, validation: str | None) -> None:
        with self.store.session() as session:
            row = session.get(TrainingJobRow, job_id)
            if row is not None:
                row.training_file_id, row.validation_file_id = training, validation

    def row(self, job_id: str) -> TrainingJobRow | None:
        with self.store.session() as session:
            return session.get(TrainingJobRow, job_id)

    def page(
        self, tenant: str | None, states: builtins.list[str] | None, limit: int, after: TrainingJobRow | None,
        kind: str = "training",
    ) -> builtins.list[TrainingJobRow]:  # fmt: skip
        """Jobs of one kind, newest first; ``tenant`` None = every tenant; ``after``: the last job of the previous
        page."""
        stmt = select(TrainingJobRow).where(TrainingJobRow.kind == kind)
        if tenant is not None:
            stmt = stmt.where(TrainingJobRow.tenant_id == tenant)
        if states:
            stmt = stmt.where(TrainingJobRow.state.in_(states))
        if after is not None:
            stmt = stmt.where(
                or_(
                    TrainingJobRow.created_at < after.created_at,
                    and_(TrainingJobRow.created_at == after.created_at, TrainingJobRow.id < after.id),
                )
            )
        with self.store.session() as session:
            order = (TrainingJobRow.created_at.desc(), TrainingJobRow.id.desc())
            return list(session.scalars(stmt.order_by(*order).limit(limit)))


# -- the service --------------------------------------------------------------------------------------
def check_nodes(nodes: int, ray_address: str | None, strategy: str = "ddp") -> None:
    """A job on several machines needs a Ray cluster; refused with what to do when there is none."""
    if nodes <= 1:
        return
    if not ray_address:
        raise InvalidInput(
            f"resources.nodes {nodes} needs a Ray cluster: start the server with --ray-address or AIAAS_RAY_ADDRESS "
            "(docs/cluster.md); on one machine use resources.workers instead",
            param="resources.nodes",
        )
    if strategy == "horovod":
        raise InvalidInput("resources.nodes > 1 runs torchrun on each node: use strategy ddp or zero",
                           param="strategy")  # fmt: skip


class JobsService:
    def __init__(
        self,
        store: DbJobStore,
        files: FilesService,
        control: ModelControl,
        models: ModelManager,
        jobs_root: Path,
        cores: int | None = None,
        torch_extensions_dir: Path | None = None,  # strategy zero's compiled DeepSpeed ops (Settings)
        ray_address: str | None = None,  # the Ray cluster multi-node jobs would span (Settings)
    ) -> None:
        self.store = store
        self.ray_address = ray_address
        self.torch_extensions_dir = torch_extensions_dir
        self.files = files
        self.control = control
        self.models = models
        self.jobs_root = Path(jobs_root)
        self.cores = cores
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: Scheduler | None = None
        self._running = False
        self._lock = threading.Lock()
        # job kind -> (repository, job) -> new version: other kinds plug their registration in (optimizations)
        self.registrars: dict[str, Callable[[Any, JobRecord], int | None]] = {}

    # -- lifecycle (the app's lifespan) -------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        """Server start (blocking): resume the jobs that were running, then run the queue. Returns the ids of
        the resumed jobs."""
        self.loop = loop
        self._running = True
        pending = self.store.list(["running", "queued", "validating"])
        if self._scheduler is None and not pending:
            return []  # nothing to do: torch stays unimported until a job is created
        if not training_available() and any(j.kind == "training" for j in pending):
            log.warning("training jobs wait in the database, but torch is not installed here")
            return []
        scheduler = self.scheduler(start_loop=False, require_torch=False)
        resumed = scheduler.recover()  # before the loop starts, so resumed jobs count against the cores first
        scheduler.start()
        if resumed:
            log.info("resumed %d training job(s) from their checkpoints: %s", len(resumed), ", ".join(resumed))
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
                    self.store, self.jobs_root, cores=self.cores or None, repository=self.models.repository,
                    on_registered=self._on_registered, registrars=self.registrars,
                    torch_extensions_dir=self.torch_extensions_dir,
                )  # fmt: skip
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
    def _visible(self, p: Principal, job_id: str, kind: str = "training") -> TrainingJobRow:
        require_manage(p, f"{kind} jobs")
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
            raise job_not_found(str(job_id), kind)
        row = self.store.row(job_id)
        if row is None or (row.kind or "training") != kind or not (p.is_admin or row.tenant_id == p.tenant_id):
            raise job_not_found(job_id, kind)
        return row

    def _check_target_model(self, p: Principal, model: str) -> None:
        """May ``p`` add versions to ``model``? A new name is fine: the first version makes it the tenant's."""
        governance = self.control.governance
        exists, declared = self.control.declared_owner(model)
        ref = ModelRef(model, owner=declared)
        owner = governance.owner_of(ref)
        if exists and not governance.can_see(p, ref):
            raise NotFound(f"unknown model {model!r}", param="model")
        if not exists:  # a new name, unless an ownership record already gives it to another tenant
            if owner is None or owner == p.tenant_id or p.is_admin:
                return
            if not governance.can_see(p, ref):
                raise NotFound(f"unknown model {model!r}", param="model")
            raise PermissionDenied(f"the model name {model!r} is owned by another tenant; choose another name", param="model")
        config = self.control.models.repository.read(model).config
        if config is not None and config.backend != "onnx":
            raise Conflict(
                f"model {model!r} has backend {config.backend!r}; a training job adds ONNX versions, so choose a new model name",
                param="model",
            )
        if owner == p.tenant_id or (p.is_admin and owner is None):
            return
        if p.is_admin:
            raise Conflict(
                f"model {model!r} belongs to tenant {owner!r}; train it with a key of that tenant, or choose a new name",
                param="model",
            )
        raise PermissionDenied(f"model {model!r} is not owned by your tenant; choose a new model name", param="model")

    # -- operations ---------------------------------------------------------------------------------------
    def create(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """Validate the request, resolve its files, check the target model, and submit the job (blocking:
        the data is parsed in full before the job is queued)."""
        require_manage(p, "creating training jobs")
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object describing the job")
        if "cluster_address" in body:
            raise InvalidInput("cluster_address is set by the server (AIAAS_RAY_ADDRESS), not by a request",
                               param="cluster_address")  # fmt: skip
        spec = parse_spec(body)  # field errors first, naming the field
        check_nodes(spec.resources.nodes, self.ray_address, spec.strategy)
        train_id, val_id = spec.training_file, spec.validation_file
        updates: dict[str, Any] = {"training_file": str(self.files.resolve(p, train_id, "training_file"))}
        if spec.resources.nodes > 1:
            updates["cluster_address"] = self.ray_address
        if val_id is not None:
            updates["validation_file"] = str(self.files.resolve(p, val_id, "validation_file"))
        self._check_target_model(p, spec.model)
        job = self.scheduler().submit(spec.model_copy(update=updates), owner=p.tenant_id)
        self.store.set_file_ids(job.id, train_id, val_id)
        self._audit(p, "training_job.create", job.id, p.tenant_id, {
            "model": spec.model, "recipe": spec.recipe, "workers": spec.resources.workers, "state": job.state,
        })  # fmt: skip
        return self.get(p, job.id)

    def _audit(self, p: Principal, action: str, job_id: str, tenant: str | None, details: dict[str, Any]) -> None:
        with self.store.store.session() as session:
            write_audit(session, p, action, job_id, tenant=tenant, details=details)

    def list(self, p: Principal, status: str | None = None, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        require_manage(p, "listing training jobs")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", param="limit")
        states = [s.strip() for s in status.split(",") if s.strip()] if status else None
        for s in states or []:
            if s not in STATES:
                raise InvalidInput(f"unknown status {s[:40]!r}: use one of {', '.join(STATES)}", param="status")
        cursor = self._visible(p, after) if after else None
        rows = self.store.page(None if p.is_admin else p.tenant_id, states, limit + 1, cursor)
        return {"object": "list", "data": [job_info(r) for r in rows[:limit]], "has_more": len(rows) > limit}

    def get(self, p: Principal, job_id: str) -> dict[str, Any]:
        return job_info(self._visible(p, job_id))

    def cancel(self, p: Principal, job_id: str) -> dict[str, Any]:
        """Stop every process of the job (blocking, a few seconds at most); 409 when it already finished."""
        self.cancel_job(p, job_id, "training")
        return self.get(p, job_id)

    def cancel_job(self, p: Principal, job_id: str, kind: str) -> None:
        row = self._visible(p, job_id, kind)
        if row.state in TERMINAL:
            raise Conflict(f"{kind} job {job_id} is already {row.state}")
        if training_available() or kind != "training":
            self.scheduler(require_torch=False).cancel(job_id, reason=f"cancelled by the user (key {p.key_id})")
        else:  # nothing can run without torch: just record it
            transitions = {**(row.transitions or {}), "cancelled": time.time()}
            self.store.update(job_id, state="cancelled", sub_status=None, reason=f"cancelled by the user (key {p.key_id})", transitions=transitions)
        self._audit(p, f"{kind}_job.cancel", job_id, row.tenant_id, {"model": row.model})

    def events(
        self, p: Principal, job_id: str, after: int = 0, limit: int = 100, level: str | None = None, type: str | None = None,
        kind: str = "training",
    ) -> dict[str, Any]:  # fmt: skip
        self._visible(p, job_id, kind)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PAGE}", param="limit")
        if not isinstance(after, int) or after < 0:
            raise InvalidInput("after must be a sequence number >= 0", param="after")
        levels = _choices(level, ("debug", "info", "warning", "error"), "level")
        types = _choices(type, ("message", "metrics"), "type")
        rows = self.store.events(job_id, after, limit + 1, levels, types)
        data = rows[:limit]
        return {
            "object": "list", "data": data, "has_more": len(rows) > limit,
            "last_seq": data[-1]["seq"] if data else after,
        }  # fmt: skip

    def checkpoints(self, p: Principal, job_id: str) -> dict[str, Any]:
        row = self._visible(p, job_id)
        out = []
        for step, path in JobDir(Path(row.job_dir)).list_checkpoints():
            with contextlib.suppress(OSError):
                st = path.stat()
                out.append({"step": step, "file": path.name, "bytes": st.st_size, "created_at": st.st_mtime})
        return {"object": "list", "data": out}

    def logs(
        self, p: Principal, job_id: str, rank: int | None = None, tail: int = LOG_TAIL_DEFAULT, kind: str = "training"
    ) -> str:
        """The last ``tail`` bytes of one rank's log, or of torchrun's own log when no rank is given (an
        optimization job has one process: its worker log)."""
        row = self._visible(p, job_id, kind)
        if not isinstance(tail, int) or not 1 <= tail <= LOG_TAIL_MAX:
            raise InvalidInput(f"tail must be between 1 and {LOG_TAIL_MAX} bytes", param="tail")
        jd = JobDir(Path(row.job_dir))
        if rank is None:
            path = jd.logs / ("torchrun.log" if kind == "training" else "worker.log")
        elif kind != "training":
            raise InvalidInput(f"a {kind} job has one process and no rank logs; leave rank out", param="rank")
        else:
            workers = JobSpec.model_validate(row.spec).resources.workers
            if not isinstance(rank, int) or not 0 <= rank < workers:
                raise InvalidInput(f"rank must be between 0 and {workers - 1} (the job has {workers} worker(s))", param="rank")
            path = jd.rank_log(rank)
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - tail))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            what = ("torchrun" if kind == "training" else "worker") if rank is None else f"rank {rank}"
            raise NotFound(f"no {what} log for job {job_id} yet (state: {row.state})", param="rank") from None


def _choices(value: str | None, allowed: tuple[str, ...], param: str) -> list[str] | None:
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    for v in items:
        if v not in allowed:
            raise InvalidInput(f"unknown {param} {v[:40]!r}: use one of {', '.join(allowed)}", param=param)
    return items


def lifecycle_info(row: TrainingJobRow, kind: str) -> dict[str, Any]:
    """What every job shows, whatever its kind: id, state machine, owner, times."""
    return {
        "id": row.id,
        "object": kind,
        "status": row.state,
        "sub_status": row.sub_status,
        "reason": row.reason,
        "owner": row.tenant_id,
        "created_at": row.created_at,
        "transitions": row.transitions or {},
    }


def job_info(row: TrainingJobRow) -> dict[str, Any]:
    """The API's view of a job (shaped after OpenAI fine-tuning jobs); server paths are left out."""
    spec = dict(row.spec or {})
    result = row.result or {}
    return {
        **lifecycle_info(row, "training.job"),
        "model": row.model,
        "model_version": row.model_version,
        "recipe": row.recipe,
        "training_file": row.training_file_id,
        "validation_file": row.validation_file_id,
        "hyperparameters": spec.get("hyperparameters", {}),
        "resources": spec.get("resources", {}),
        "strategy": spec.get("strategy"),
        "checkpoint": spec.get("checkpoint", {}),
        "max_restarts": spec.get("max_restarts"),
        "max_runtime_s": spec.get("max_runtime_s"),
        "seed": spec.get("seed"),
        "priority": row.priority,
        "restarts": row.restarts,
        "progress": row.progress or {},
        "files": row.files or {},
        "metrics": result.get("metrics"),
        "result": {k: v for k, v in result.items() if k not in ("onnx",)} if result else None,
    }
