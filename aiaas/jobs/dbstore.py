"""``DbJobStore``: the engine's ``JobStore`` on the database (the ``training_jobs`` table, with a ``kind``
column, and its events table): one short transaction per call, safe from any thread.

A row's spec is read back through its kind (``aiaas.jobs.kinds``), so the kinds must be registered before a job
is read: the server imports them (``aiaas.service.jobs``). Every state change is logged on ``aiaas.jobs`` (one
line per change, with job and event fields in JSON logs).
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from aiaas.errors import NotFound
from aiaas.jobs.kinds import get_kind
from aiaas.jobs.states import JobState
from aiaas.jobs.store import RECORD_FIELDS, JobRecord, RunSpec
from aiaas.store.db import Store
from aiaas.store.jobs import TrainingJobEventRow, TrainingJobRow

lifecycle = logging.getLogger("aiaas.jobs")  # one line per job state change (with job and event fields in JSON logs)


def job_not_found(job_id: str, kind: str = "training") -> NotFound:
    """The one 404 for a job that does not exist *or* belongs to another tenant (indistinguishable)."""
    return NotFound(f"no {kind} job {str(job_id)[:80]!r}", param="job_id", code="job_not_found")


def _record(row: TrainingJobRow) -> JobRecord:
    kind = row.kind or "training"
    return JobRecord(
        id=row.id,
        kind=kind,
        spec=get_kind(kind).load_spec(row.spec),
        job_dir=row.job_dir,
        state=JobState(row.state),
        sub_status=row.sub_status,
        reason=row.reason,
        owner=row.tenant_id,
        created_at=row.created_at,
        transitions=dict(row.transitions or {}),
        files=dict(row.files or {}),
        result=row.result,
        model_version=row.model_version,
        restarts=row.restarts,
        progress=dict(row.progress or {}),
        events_offset=row.events_offset,
    )


def _apply(row: TrainingJobRow, field: str, value: Any) -> None:
    if field == "spec":
        kind = get_kind(row.kind or "training")
        spec: RunSpec = kind.load_spec(value)
        row.spec = spec.model_dump(mode="json")
        row.model, row.priority = spec.model, spec.priority
        row.recipe = kind.label(spec)[:32]
    elif field == "state":
        row.state = JobState(value).value  # the column holds the plain string
    elif field == "owner":
        row.tenant_id = value
    elif field in ("transitions", "files", "progress"):
        row.__setattr__(field, dict(value or {}))  # a new object: SQLAlchemy sees the JSON changed
    else:
        setattr(row, field, value)


class DbJobStore:
    """``aiaas.jobs.store.JobStore`` on the database: one short transaction per call, safe from any thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, job: JobRecord) -> None:
        row = TrainingJobRow(id=job.id, kind=job.kind, job_dir=job.job_dir, events_offset=0, restarts=0)
        for field in RECORD_FIELDS - {"job_dir", "kind"}:
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
        unknown = set(fields) - RECORD_FIELDS
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
            lifecycle.info(
                "%s job %s %s -> %s%s",
                record.kind,
                job_id,
                before,
                record.state,
                reason,
                extra={"job": job_id, "event": record.state},
            )
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
                        job_id=job_id,
                        seq=seq,
                        ts=float(e.get("ts") or time.time()),
                        level=str(e.get("level") or "info")[:16],
                        type=str(e.get("type") or "message")[:16],
                        message=str(e.get("message") or ""),
                        data=dict(e.get("data") or {}),
                    )
                )

    def events(
        self,
        job_id: str,
        after: int = 0,
        limit: int = 100,
        levels: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
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
            stmt = stmt.where(TrainingJobRow.state.in_([JobState(s).value for s in states]))
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
        self,
        tenant: str | None,
        states: builtins.list[str] | None,
        limit: int,
        after: TrainingJobRow | None,
        kind: str = "training",
    ) -> builtins.list[TrainingJobRow]:
        """Jobs of one kind, newest first; ``tenant`` None = every tenant; ``after``: the last job of the previous
        page."""
        stmt = select(TrainingJobRow).where(TrainingJobRow.kind == kind)
        if tenant is not None:
            stmt = stmt.where(TrainingJobRow.tenant_id == tenant)
        if states:
            stmt = stmt.where(TrainingJobRow.state.in_([JobState(s).value for s in states]))
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
