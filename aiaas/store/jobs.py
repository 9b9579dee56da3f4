"""Tables of uploaded files and training jobs (with their events), on the same ``Base`` as the governance tables
so one Alembic history (revisions 0003 and 0004) and one ``Base.metadata`` describe the whole database.

Job timestamps are epoch seconds (``Float``), not ``DateTime`` like the governance tables: the training engine
(``aiaas.jobs.store.JobRecord``) speaks epoch seconds everywhere -- ``created_at``, the per-transition
times, the events' ``ts`` -- and a float round-trips exactly through both SQLite and PostgreSQL. The job's
description and results are JSON documents: they are read and written whole, and the columns that lists filter
or sort on (tenant, state, created_at, model) are real columns with indexes.

Neither table references ``tenants`` by foreign key: a job or file outlives nothing it needs from the tenant
row, and deleting a tenant must not cascade into a running job's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aiaas.store.models import Base, utcnow


class FileRow(Base):
    """An uploaded training file; the bytes live at ``$AIAAS_HOME/files/<tenant_id>/<id>.<format>``."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # file-<hex>
    tenant_id: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(256))  # as uploaded (display only; never used as a path)
    format: Mapped[str] = mapped_column(String(16))  # csv | jsonl | npz | parquet
    purpose: Mapped[str] = mapped_column(String(32), default="training")
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # aiaas.training.files.FileSummary.to_dict()
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class TrainingJobRow(Base):
    """One training job: the columns mirror ``aiaas.jobs.store.JobRecord``."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_training_jobs_state", "state"),
        Index("ix_training_jobs_kind_tenant_created", "kind", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # trjob-<hex> | optjob-<hex>
    # training | optimization (revision 0004): optimization jobs run on the same machinery, in the same table
    kind: Mapped[str] = mapped_column(String(16), default="training", server_default="training")
    tenant_id: Mapped[str | None] = mapped_column(String(64))  # JobRecord.owner
    state: Mapped[str] = mapped_column(String(16))
    sub_status: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(128))  # spec.model, for filtering
    recipe: Mapped[str] = mapped_column(String(32))  # spec.recipe ("optimize" / "compare" for optimization jobs)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # spec.priority
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # JobSpec.model_dump(mode="json")
    job_dir: Mapped[str] = mapped_column(Text)
    training_file_id: Mapped[str | None] = mapped_column(String(64))  # the uploaded files the job was made from
    validation_file_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    transitions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_version: Mapped[int | None] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    events_offset: Mapped[int] = mapped_column(BigInteger, default=0)


class TrainingJobEventRow(Base):
    __tablename__ = "training_job_events"

    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based, per job
    ts: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(16))  # info | warning | error
    type: Mapped[str] = mapped_column(String(16))  # message | metrics
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
