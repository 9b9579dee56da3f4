"""``GovernanceAdmin``: the management operations shared by the REST API and the CLI.

Every method takes the acting ``Principal`` and enforces, before touching anything:

* ``admin``: everything.
* ``developer``: its own tenant -- its keys (never admin keys), key-scoped limits and budgets, grants of the
  models its tenant owns, its usage and audit trail; tenant-wide limits and budgets are read-only.
* ``user``: reads its own key, its limits, budget and usage.

Anything in another tenant answers ``NotFound`` exactly as if it did not exist, so keys cannot probe other
tenants; a visible resource the role may not change answers ``PermissionDenied``. Every change writes an
audit row in the same transaction. Methods are synchronous (database I/O): call them from a worker thread in
async code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aiaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from aiaas.service.governance import keys as keyops
from aiaas.service.governance import tenants as tops
from aiaas.service.governance.audit import query_audit, write_audit
from aiaas.service.governance.base import Principal
from aiaas.service.governance.keys import BOOTSTRAP_KEY_ID, SYSTEM_TENANT
from aiaas.service.governance.limits import LimitSpec
from aiaas.service.governance.service import DbGovernance, model_not_found
from aiaas.service.governance.usage import query_usage
from aiaas.service.governance.validation import (
    GROUP_BY,
    PERIODS,
    check_choice,
    check_model,
    check_models,
    check_name,
    check_number,
    check_role,
    check_scope,
    parse_time,
)
from aiaas.store.db import Store
from aiaas.store.models import ApiKey, ModelAcl, ModelGrant, Tenant, utcnow

CLI_PRINCIPAL = Principal(key_id=BOOTSTRAP_KEY_ID, tenant_id=SYSTEM_TENANT, role="admin")
# model name -> (whether the server has the model, the owner tenant its config declares); see _owned_model
ModelOwnerLookup = Callable[[str], tuple[bool, str | None]]


def _need(actor: Principal, *roles: str) -> None:
    if actor.role not in roles:
        raise PermissionDenied(
            f"this action needs a key with role {' or '.join(roles)}; this key has role '{actor.role}'",
            code="insufficient_role",
        )


def _label(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
        raise InvalidInput("invalid name: use 1-128 printable characters", param="name")
    return value


class GovernanceAdmin:
    def __init__(self, store: Store, governance: DbGovernance | None = None) -> None:
        self.store = store
        self.governance = governance  # told about changes so this process applies them at once

    def _changed(self, *key_ids: str) -> None:
        if self.governance is None:
            return
        for key_id in key_ids:
            self.governance.invalidate_key(key_id)
        self.governance.refresh()

    def ensure_system_tenant(self) -> None:
        with self.store.session() as session:
            if session.get(Tenant, SYSTEM_TENANT) is None:
                session.add(Tenant(id=SYSTEM_TENANT, created_at=utcnow()))

    # --- visibility ------------------------------------------------------------------------------------
    def _tenant(self, session: Session, actor: Principal, tenant: str) -> Tenant:
        check_name(tenant, "tenant")
        if not actor.is_admin and tenant != actor.tenant_id:
            raise tops.tenant_not_found(tenant)
        return tops.get_tenant(session, tenant)

    def _key(self, session: Session, actor: Principal, key_id: str) -> ApiKey:
        check_name(key_id, "key_id")
        row = session.get(ApiKey, key_id)
        visible = row is not None and (
            actor.is_admin or (actor.role == "developer" and row.tenant_id == actor.tenant_id) or row.id == actor.key_id
        )
        if not visible or row is None:
            raise NotFound(f"API key '{key_id}' not found", param="key_id", code="key_not_found")
        return row

    def _subject(self, session: Session, actor: Principal, scope: str, subject: str, write: bool) -> str:
        """Check access to the limits/budget of a key or tenant; returns the owning tenant."""
        check_scope(scope)
        if scope == "tenant":
            self._tenant(session, actor, subject)
            if write:
                _need(actor, "admin")
            elif actor.role == "user":
                _need(actor, "admin", "developer")
            return subject
        row = self._key(session, actor, subject)
        if write:
            _need(actor, "admin", "developer")
            if row.role == "admin" and not actor.is_admin:
                raise PermissionDenied("only admins may change admin keys", code="insufficient_role")
        return row.tenant_id

    def _owned_model(
        self, session: Session, actor: Principal, model: str, declared: ModelOwnerLookup | None = None
    ) -> ModelAcl | None:
        """The model's ACL row, when ``actor`` may manage the model's grants.

        Ownership is the ACL row when there is one, else what the model's own config declares (``declared``:
        whether the model exists on this server and its ``owner``) -- the rule ``DbGovernance.owner_of``
        applies to calls. A model the caller cannot see answers 404 like a missing one; a visible model it
        does not own answers 403."""
        check_model(model)
        acl = session.get(ModelAcl, model)
        if actor.is_admin:
            return acl
        _need(actor, "admin", "developer")
        if actor.allowed_models is not None and model not in actor.allowed_models:
            raise model_not_found(model)
        if acl is not None:
            owner, public = acl.owner_tenant_id, acl.public
        else:
            exists, owner = declared(model) if declared is not None else (False, None)
            if not exists:
                raise model_not_found(model)
            public = owner is None
        if owner == actor.tenant_id:
            return acl
        if public or session.get(ModelGrant, (model, actor.tenant_id)) is not None:
            raise PermissionDenied(f"model '{model}' is not owned by tenant '{actor.tenant_id}'")
        raise model_not_found(model)

    # --- tenants -------------------------------------------------------------------------------------
    def create_tenant(self, actor: Principal, name: str) -> dict[str, Any]:
        _need(actor, "admin")
        check_name(name, "name")
        with self.store.session() as session:
            row = tops.create_tenant(session, name)
            write_audit(session, actor, "tenant.create", name, tenant=name)
            return tops.tenant_info(session, row)

    def list_tenants(self, actor: Principal) -> list[dict[str, Any]]:
        with self.store.session() as session:
            stmt = select(Tenant).order_by(Tenant.id)
            if not actor.is_admin:
                stmt = stmt.where(Tenant.id == actor.tenant_id)
            return [tops.tenant_info(session, row) for row in session.scalars(stmt)]

    def get_tenant(self, actor: Principal, name: str) -> dict[str, Any]:
        with self.store.session() as session:
            return tops.tenant_info(session, self._tenant(session, actor, name))

    def delete_tenant(self, actor: Principal, name: str) -> dict[str, Any]:
        with self.store.session() as session:
            self._tenant(session, actor, name)
            _need(actor, "admin")
            if name == SYSTEM_TENANT:
                raise Conflict("the system tenant holds the bootstrap admin key and cannot be deleted")
            key_ids = tops.delete_tenant(session, name)
            write_audit(session, actor, "tenant.delete", name, tenant=name, details={"keys": key_ids})
        self._changed(*key_ids)
        return {"id": name, "deleted": True, "deleted_keys": len(key_ids)}

    # --- keys ----------------------------------------------------------------------------------------
    def create_key(
        self,
        actor: Principal,
        tenant: str,
        role: str = "user",
        *,
        name: str | None = None,
        models: list[str] | None = None,
        expires_days: float | None = None,
    ) -> dict[str, Any]:
        """A new key; the returned ``key`` is the only time the secret is ever shown."""
        check_role(role)
        name = _label(name)
        models = check_models(models)
        check_number(expires_days, "expires_days", maximum=36500)
        if expires_days is not None and expires_days <= 0:  # fail closed: 0 must not mean "never expires"
            raise InvalidInput(
                "expires_days must be greater than 0 (omit it for a key that does not expire)", param="expires_days"
            )
        with self.store.session() as session:
            self._tenant(session, actor, tenant)
            _need(actor, "admin", "developer")
            if role == "admin" and not actor.is_admin:
                raise PermissionDenied("only admins may create admin keys", param="role", code="insufficient_role")
            row, token = keyops.insert_key(
                session, tenant, role, name=name, allowed_models=models, expires_at=keyops.expiry_in(expires_days)
            )
            write_audit(
                session,
                actor,
                "key.create",
                row.id,
                tenant=tenant,
                details={"role": role, "models": models, "expires_at": keyops.iso(row.expires_at)},
            )
            return {**keyops.key_info(row), "key": token}

    def list_keys(self, actor: Principal, tenant: str | None = None) -> list[dict[str, Any]]:
        with self.store.session() as session:
            stmt = select(ApiKey).order_by(ApiKey.tenant_id, ApiKey.created_at, ApiKey.id)
            if tenant is not None:
                self._tenant(session, actor, tenant)
                stmt = stmt.where(ApiKey.tenant_id == tenant)
            if actor.role == "developer":
                stmt = stmt.where(ApiKey.tenant_id == actor.tenant_id)
            elif actor.role == "user":
                stmt = stmt.where(ApiKey.id == actor.key_id)
            return [keyops.key_info(row) for row in session.scalars(stmt)]

    def get_key(self, actor: Principal, key_id: str) -> dict[str, Any]:
        with self.store.session() as session:
            return keyops.key_info(self._key(session, actor, key_id))

    def _mutable_key(self, session: Session, actor: Principal, key_id: str) -> ApiKey:
        row = self._key(session, actor, key_id)
        _need(actor, "admin", "developer")
        if row.role == "admin" and not actor.is_admin:
            raise PermissionDenied("only admins may change admin keys", code="insufficient_role")
        if row.id == BOOTSTRAP_KEY_ID:
            raise Conflict("the bootstrap admin key is set by AIAAS_ADMIN_KEY / admin.key; change it there")
        return row

    def revoke_key(self, actor: Principal, key_id: str) -> dict[str, Any]:
        with self.store.session() as session:
            row = self._mutable_key(session, actor, key_id)
            keyops.revoke(row)
            write_audit(session, actor, "key.revoke", row.id, tenant=row.tenant_id)
            info = keyops.key_info(row)
        self._changed(key_id)
        return info

    def rotate_key(self, actor: Principal, key_id: str) -> dict[str, Any]:
        """A replacement key (shown once) carrying the old key's settings; the old key is revoked."""
        with self.store.session() as session:
            row = self._mutable_key(session, actor, key_id)
            if row.revoked_at is not None:
                raise Conflict(f"API key '{key_id}' is revoked; create a new key instead", code="key_revoked")
            new, token = keyops.rotate(session, row)
            write_audit(session, actor, "key.rotate", row.id, tenant=row.tenant_id, details={"new_key": new.id})
            info = {**keyops.key_info(new), "key": token}
        self._changed(key_id)
        return info

    # --- models --------------------------------------------------------------------------------------
    def grant_model(
        self, actor: Principal, model: str, tenant: str, *, declared: ModelOwnerLookup | None = None
    ) -> dict[str, Any]:
        """Let ``tenant`` see and call ``model``; ``declared`` looks up the owner a model's config names."""
        check_name(tenant, "tenant")
        with self.store.session() as session:
            self._owned_model(session, actor, model, declared)
            created = tops.grant(session, model, tenant)
            if created:
                write_audit(session, actor, "model.grant", model, tenant=tenant)
            info = tops.acl_info(session, model)
        self._changed()
        return info

    def revoke_model_grant(
        self, actor: Principal, model: str, tenant: str, *, declared: ModelOwnerLookup | None = None
    ) -> dict[str, Any]:
        check_name(tenant, "tenant")
        with self.store.session() as session:
            self._owned_model(session, actor, model, declared)
            tops.revoke_grant(session, model, tenant)
            write_audit(session, actor, "model.revoke_grant", model, tenant=tenant)
            info = tops.acl_info(session, model)
        self._changed()
        return info

    def set_model_owner(self, actor: Principal, model: str, owner: str | None, public: bool) -> dict[str, Any]:
        """Record who owns ``model`` (None: nobody) and whether every tenant may see it."""
        _need(actor, "admin")
        check_model(model)
        if owner is not None:
            check_name(owner, "owner")
        if not isinstance(public, bool):
            raise InvalidInput("public must be true or false", param="public")
        with self.store.session() as session:
            tops.set_acl(session, model, owner, public)
            write_audit(session, actor, "model.owner", model, tenant=owner, details={"owner": owner, "public": public})
            info = tops.acl_info(session, model)
        self._changed()
        return info

    # --- limits and budgets --------------------------------------------------------------------------
    def set_limits(
        self,
        actor: Principal,
        scope: str,
        subject: str,
        *,
        rpm: int | None = None,
        upm: float | None = None,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Replace the limits of a key or tenant (None: unlimited; all None removes the limits)."""
        check_number(rpm, "requests_per_minute", integer=True, maximum=1e9)
        check_number(upm, "units_per_minute", maximum=1e15)
        check_number(concurrency, "concurrency", integer=True, maximum=1e6)
        spec = LimitSpec(
            int(rpm) if rpm is not None else None,
            float(upm) if upm is not None else None,
            int(concurrency) if concurrency is not None else None,
        )
        with self.store.session() as session:
            tenant = self._subject(session, actor, scope, subject, write=True)
            row = tops.set_limit(session, scope, subject, spec)
            info = tops.limit_info(scope, subject, row)
            write_audit(session, actor, "limits.set", f"{scope}:{subject}", tenant=tenant, details=info)
        self._changed()
        return info

    def get_limits(self, actor: Principal, scope: str, subject: str) -> dict[str, Any]:
        with self.store.session() as session:
            self._subject(session, actor, scope, subject, write=False)
            return tops.limit_info(scope, subject, tops.get_limit(session, scope, subject))

    def set_budget(
        self, actor: Principal, scope: str, subject: str, *, amount: float | None, period: str = "month"
    ) -> dict[str, Any]:
        """Set the spending limit of a key or tenant per ``period`` (day, month, total); None removes it."""
        check_number(amount, "limit", maximum=1e15)
        check_choice(period, PERIODS, "period")
        with self.store.session() as session:
            tenant = self._subject(session, actor, scope, subject, write=True)
            row = tops.set_budget(session, scope, subject, amount, period)
            info = tops.budget_info(scope, subject, row)
            write_audit(
                session,
                actor,
                "budget.set",
                f"{scope}:{subject}",
                tenant=tenant,
                details={"limit": amount, "period": period},
            )
        self._changed()
        return info

    def get_budget(self, actor: Principal, scope: str, subject: str) -> dict[str, Any]:
        with self.store.session() as session:
            self._subject(session, actor, scope, subject, write=False)
            row = tops.get_budget(session, scope, subject)
            info = tops.budget_info(scope, subject, row)
        # With the in-memory ledger this process, not the database (written every second), is current.
        if row is not None and self.governance is not None and self.governance.ledger.mode == "memory":
            state = self.governance.ledger.get(row.id)
            if state is not None:
                info["spent"] = round(state.spent, 10)
        return info

    # --- usage and audit -----------------------------------------------------------------------------
    def usage(
        self,
        actor: Principal,
        *,
        tenant: str | None = None,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        group_by: str = "model",
        key: str | None = None,
    ) -> dict[str, Any]:
        """Usage totals in [start, end) (default: the last 30 days) grouped by model, key or UTC day."""
        check_choice(group_by, GROUP_BY, "group_by")
        t0, t1 = parse_time(start, "start"), parse_time(end, "end")
        if t0 is None:
            t0 = (t1 or utcnow()) - timedelta(days=30)
        if t1 is not None and t1 <= t0:
            raise InvalidInput("end must be after start", param="end")
        with self.store.session() as session:
            if tenant is None and not actor.is_admin:
                tenant = actor.tenant_id
            if tenant is not None:
                since = self._tenant(session, actor, tenant).created_at
                if not actor.is_admin and since > t0:
                    # History stays after a tenant is deleted; a new tenant that reuses the name must not
                    # see its predecessor's usage.
                    t0 = since
            if key is not None:
                row = self._key(session, actor, key)
                if tenant is not None and row.tenant_id != tenant:
                    raise NotFound(f"API key '{key}' not found", param="key", code="key_not_found")
            if actor.role == "user":
                key = actor.key_id
        rows = query_usage(self.store, tenant=tenant, start=t0, end=t1, group_by=group_by, key=key)
        return {
            "tenant": tenant,
            "key": key,
            "start": keyops.iso(t0),
            "end": keyops.iso(t1),
            "group_by": group_by,
            "data": rows,
        }

    def audit(
        self,
        actor: Principal,
        *,
        tenant: str | None = None,
        action: str | None = None,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first; developers see their own tenant's."""
        _need(actor, "admin", "developer")
        check_number(limit, "limit", integer=True, maximum=10_000)
        if action is not None and (len(action) > 64 or not action.replace(".", "").replace("_", "").isalnum()):
            raise InvalidInput(f"invalid action {action[:40]!r}", param="action")
        t0, t1 = parse_time(start, "start"), parse_time(end, "end")
        with self.store.session() as session:
            if tenant is None and not actor.is_admin:
                tenant = actor.tenant_id
            if tenant is not None:
                since = self._tenant(session, actor, tenant).created_at
                if not actor.is_admin and (t0 is None or since > t0):
                    t0 = since  # not the audit trail of a deleted tenant that had the same name
            return query_audit(session, tenant=tenant, action=action, start=t0, end=t1, limit=int(limit))
