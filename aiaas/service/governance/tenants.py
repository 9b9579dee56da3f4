"""Database operations on tenants and on what hangs off them: model ownership and grants, limits, budgets.

These functions take an open ``Session`` and do no authorization; ``GovernanceAdmin`` checks who may call
them and writes the audit row in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from aiaas.errors import Conflict, NotFound
from aiaas.service.governance.budgets import next_reset, period_start
from aiaas.service.governance.keys import iso
from aiaas.service.governance.limits import LimitSpec
from aiaas.store.models import ApiKey, Budget, Limit, ModelAcl, ModelGrant, Tenant, utcnow


def tenant_not_found(name: str) -> NotFound:
    return NotFound(f"tenant '{name}' not found", param="tenant", code="tenant_not_found")


def create_tenant(session: Session, name: str) -> Tenant:
    if session.get(Tenant, name) is not None:
        raise Conflict(f"tenant '{name}' already exists", param="name", code="tenant_exists")
    row = Tenant(id=name, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def get_tenant(session: Session, name: str) -> Tenant:
    row = session.get(Tenant, name)
    if row is None:
        raise tenant_not_found(name)
    return row


def tenant_info(session: Session, row: Tenant) -> dict[str, Any]:
    keys = session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.tenant_id == row.id, ApiKey.revoked_at.is_(None))
    )
    return {"id": row.id, "created_at": iso(row.created_at), "active_keys": int(keys or 0)}


def delete_tenant(session: Session, name: str) -> list[str]:
    """Delete the tenant with its keys, grants, owned-model ACLs, limits and budgets; usage and audit stay
    (they are history). Returns the deleted key ids."""
    get_tenant(session, name)
    key_ids = list(session.scalars(select(ApiKey.id).where(ApiKey.tenant_id == name)))
    for model in (Limit, Budget):
        session.execute(
            delete(model).where(
                or_(
                    (model.scope == "tenant") & (model.subject_id == name),
                    (model.scope == "key") & model.subject_id.in_(key_ids),
                )
            )
        )
    # Explicit deletes, not only ON DELETE CASCADE: correct even on a SQLite connection without foreign keys.
    session.execute(delete(ModelGrant).where(ModelGrant.tenant_id == name))
    session.execute(delete(ModelAcl).where(ModelAcl.owner_tenant_id == name))
    session.execute(delete(ApiKey).where(ApiKey.tenant_id == name))
    session.execute(delete(Tenant).where(Tenant.id == name))
    return key_ids


def acl_info(session: Session, model: str) -> dict[str, Any]:
    acl = session.get(ModelAcl, model)
    grants = sorted(session.scalars(select(ModelGrant.tenant_id).where(ModelGrant.model == model)))
    return {
        "model": model,
        "owner": acl.owner_tenant_id if acl else None,
        "public": acl.public if acl else None,
        "grants": grants,
    }


def set_acl(session: Session, model: str, owner: str | None, public: bool) -> None:
    if owner is not None:
        get_tenant(session, owner)
    acl = session.get(ModelAcl, model)
    if acl is None:
        session.add(ModelAcl(model=model, owner_tenant_id=owner, public=public, updated_at=utcnow()))
    else:
        acl.owner_tenant_id, acl.public, acl.updated_at = owner, public, utcnow()
    session.flush()


def grant(session: Session, model: str, tenant: str) -> bool:
    get_tenant(session, tenant)
    if session.get(ModelGrant, (model, tenant)) is not None:
        return False
    session.add(ModelGrant(model=model, tenant_id=tenant, created_at=utcnow()))
    session.flush()
    return True


def revoke_grant(session: Session, model: str, tenant: str) -> None:
    row = session.get(ModelGrant, (model, tenant))
    if row is None:
        raise NotFound(f"model '{model}' has no grant for tenant '{tenant}'", code="grant_not_found")
    session.delete(row)


def limit_info(scope: str, subject: str, row: Limit | None) -> dict[str, Any]:
    return {
        "scope": scope,
        "id": subject,
        "requests_per_minute": row.requests_per_minute if row else None,
        "units_per_minute": row.units_per_minute if row else None,
        "concurrency": row.concurrency if row else None,
    }


def get_limit(session: Session, scope: str, subject: str) -> Limit | None:
    return session.scalar(select(Limit).where(Limit.scope == scope, Limit.subject_id == subject))


def set_limit(session: Session, scope: str, subject: str, spec: LimitSpec) -> Limit | None:
    row = get_limit(session, scope, subject)
    if spec.empty:
        if row is not None:
            session.delete(row)
        return None
    if row is None:
        row = Limit(scope=scope, subject_id=subject)
        session.add(row)
    row.requests_per_minute, row.units_per_minute, row.concurrency = spec.rpm, spec.upm, spec.concurrency
    row.updated_at = utcnow()
    session.flush()
    return row


def budget_info(scope: str, subject: str, row: Budget | None) -> dict[str, Any]:
    if row is None:
        return {"scope": scope, "id": subject, "limit": None, "period": None, "spent": None, "resets_at": None}
    return {
        "scope": scope,
        "id": subject,
        "limit": row.limit_amount,
        "period": row.period,
        "spent": round(row.spent, 10),
        "period_start": iso(row.period_start),
        "resets_at": iso(next_reset(row.period, row.period_start)),
    }


def get_budget(session: Session, scope: str, subject: str) -> Budget | None:
    return session.scalar(select(Budget).where(Budget.scope == scope, Budget.subject_id == subject))


def set_budget(session: Session, scope: str, subject: str, amount: float | None, period: str) -> Budget | None:
    """Create or change a budget (None removes it). Changing the period restarts the spending count; changing
    only the amount keeps what was spent in the current period."""
    row = get_budget(session, scope, subject)
    if amount is None:
        if row is not None:
            session.delete(row)
        return None
    now = utcnow()
    if row is None:
        row = Budget(scope=scope, subject_id=subject, spent=0.0, period=period, period_start=period_start(period, now))
        session.add(row)
    elif row.period != period:
        row.period, row.spent, row.period_start = period, 0.0, period_start(period, now)
    row.limit_amount = float(amount)
    row.updated_at = now
    session.flush()
    return row
