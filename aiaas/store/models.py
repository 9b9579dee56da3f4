"""The governance schema as typed SQLAlchemy 2 ORM classes.

The migrations in ``migrations/versions`` are the source of truth for the database; these classes mirror the
newest revision. Every timestamp is naive UTC (``utcnow()``), the one representation SQLite and PostgreSQL
compare identically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT ids on PostgreSQL, but INTEGER on SQLite, where only "INTEGER PRIMARY KEY" auto-increments.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the tenant's name, validated
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the lookup prefix inside the key
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole key string
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime())  # added in revision 0002
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime())
    rotated_to: Mapped[str | None] = mapped_column(String(64))


class ModelAcl(Base):
    """Who owns a model and whether everyone may see it; absent rows fall back to the model's own config."""

    __tablename__ = "model_acl"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class ModelGrant(Base):
    __tablename__ = "model_grants"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Limit(Base):
    __tablename__ = "limits"
    __table_args__ = (UniqueConstraint("scope", "subject_id", name="uq_limits_scope_subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))  # key | tenant
    subject_id: Mapped[str] = mapped_column(String(64))
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    units_per_minute: Mapped[float | None] = mapped_column(Float)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Budget(Base):
    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("scope", "subject_id", name="uq_budgets_scope_subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))  # key | tenant
    subject_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(8))  # day | month | total
    limit_amount: Mapped[float] = mapped_column(Float)
    spent: Mapped[float] = mapped_column(Float, default=0.0)
    period_start: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_tenant_created", "tenant_id", "created_at"),)  # revision 0002

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    units_in: Mapped[float] = mapped_column(Float, default=0.0)
    units_out: Mapped[float] = mapped_column(Float, default=0.0)
    compute_s: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class UsageHourly(Base):
    """Exact totals of the usage rows of one UTC hour, tenant, key and model, kept up to date by the usage
    writer in the transaction that inserts the raw rows (0005)."""

    __tablename__ = "usage_hourly"
    __table_args__ = (
        UniqueConstraint("hour", "tenant_id", "key_id", "model", name="uq_usage_hourly_group"),
        Index("ix_usage_hourly_tenant_hour", "tenant_id", "hour"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hour: Mapped[datetime] = mapped_column(DateTime())  # the start of the UTC hour
    tenant_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    units_in: Mapped[float] = mapped_column(Float)
    units_out: Mapped[float] = mapped_column(Float)
    compute_s: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)  # sum over the hour's requests, so averages stay exact


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow, index=True)
    actor_key_id: Mapped[str] = mapped_column(String(64))
    actor_tenant_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the tenant the action affected
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
