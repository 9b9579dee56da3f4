"""The audit trail: one row per administrative action, written in the same transaction as the change, so
an action and its audit row commit (or fail) together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aiaas.service.governance.base import Principal
from aiaas.store.models import AuditEntry, utcnow


def write_audit(
    session: Session,
    actor: Principal,
    action: str,
    target: str,
    *,
    tenant: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=utcnow(),
            actor_key_id=actor.key_id,
            actor_tenant_id=actor.tenant_id,
            tenant_id=tenant,
            action=action,
            target=target[:256],
            details=details or {},
        )
    )


def query_audit(
    session: Session,
    *,
    tenant: str | None,
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``tenant`` keeps the rows about that tenant or done by one of its keys."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if tenant is not None:
        stmt = stmt.where((AuditEntry.tenant_id == tenant) | (AuditEntry.actor_tenant_id == tenant))
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if start is not None:
        stmt = stmt.where(AuditEntry.at >= start)
    if end is not None:
        stmt = stmt.where(AuditEntry.at < end)
    return [
        {
            "id": row.id,
            "at": row.at.isoformat(timespec="milliseconds") + "Z",
            "actor_key": row.actor_key_id,
            "actor_tenant": row.actor_tenant_id,
            "tenant": row.tenant_id,
            "action": row.action,
            "target": row.target,
            "details": row.details,
        }
        for row in session.scalars(stmt)
    ]
