"""``DbGovernance``: the database-backed implementation of the governance contract.

The hot path (``authenticate`` + ``admit`` + ``finish``) normally does no database I/O:

* keys are cached in memory for ``key_cache_ttl_s`` (default 5 s) after one lookup by their prefix. A key
  revoked, rotated or deleted through ``GovernanceAdmin`` in this process stops working at once; through
  another process (the CLI, another replica) within ``key_cache_ttl_s``.
* model ownership, grants, limits and budget definitions are a snapshot of small tables, reloaded every
  ``refresh_s`` (and at once after a change through ``GovernanceAdmin`` in this process).
* rate limits and concurrency are counted in memory, or in Redis (one Lua call in ``admit``, one in
  ``finish``) when ``redis_url`` is set so that every replica shares them.
* budgets are reserved in memory (SQLite) or with one conditional UPDATE when a budget applies (PostgreSQL),
  see ``budgets.py``.
* usage is appended to a buffer that a background task writes every ``usage_flush_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select

from aiaas.errors import AuthenticationError, NotFound
from aiaas.service.governance.audit import write_audit
from aiaas.service.governance.base import Admission, Governance, ModelRef, Outcome, Principal, parse_bearer
from aiaas.service.governance.budgets import BudgetState, DbLedger, Ledger, MemoryLedger, Reservation
from aiaas.service.governance.keys import (
    BOOTSTRAP_KEY_ID,
    SYSTEM_TENANT,
    KeyRecord,
    hash_key,
    key_id_of,
    load_key,
    verify,
)
from aiaas.service.governance.limits import Limiter, LimitSpec, MemoryLimiter, RedisLimiter
from aiaas.service.governance.usage import UsageRow, UsageWriter
from aiaas.store.db import Store
from aiaas.store.models import ApiKey, Budget, Limit, ModelAcl, ModelGrant, Tenant, utcnow

log = logging.getLogger("aiaas.governance")
SYSTEM_PRINCIPAL = Principal(key_id="system", tenant_id=SYSTEM_TENANT, role="admin")
# A key created this close before the last policy load may have had its limits committed just after it.
NEW_KEY_MARGIN = timedelta(seconds=2)


def model_not_found(name: str) -> NotFound:
    """The one 404 for a model that does not exist *or* that the caller may not see (indistinguishable).

    Byte-for-byte the error ``aiaas.service.models`` raises for an unknown model; keep the two in step."""
    return NotFound(f"unknown model {name!r}")


def price(pricing: dict[str, float], outcome: Outcome) -> float:
    units = outcome.units_in + outcome.units_out
    return (
        float(pricing.get("per_request", 0.0))
        + units / 1000.0 * float(pricing.get("per_1k_units", 0.0))
        + outcome.compute_s * float(pricing.get("per_compute_second", 0.0))
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """An immutable snapshot of the small policy tables; replaced as a whole on refresh."""

    acl: dict[str, tuple[str | None, bool]] = field(default_factory=dict)  # model -> (owner, public)
    grants: frozenset[tuple[str, str]] = frozenset()  # (model, tenant)
    limits: dict[str, LimitSpec] = field(default_factory=dict)  # "key:<id>" | "tenant:<id>" -> spec
    budgets: dict[str, int] = field(default_factory=dict)  # "key:<id>" | "tenant:<id>" -> budget id


@dataclass(slots=True)
class _CachedKey:
    deadline: float
    record: KeyRecord | None
    principal: Principal | None


class DbGovernance(Governance):
    def __init__(
        self,
        store: Store,
        *,
        redis_url: str | None = None,
        redis_prefix: str = "aiaas:rl:",
        key_cache_ttl_s: float = 5.0,
        refresh_s: float = 5.0,
        usage_flush_s: float = 1.0,
        budget_mode: Literal["auto", "memory", "db"] = "auto",
        concurrency_lease_s: float = 600.0,
        limiter: Limiter | None = None,
    ) -> None:
        self.store = store
        self.key_cache_ttl_s = key_cache_ttl_s
        self.refresh_s = refresh_s
        self.usage_flush_s = usage_flush_s
        if limiter is None:
            limiter = (
                RedisLimiter(redis_url, prefix=redis_prefix, lease_s=concurrency_lease_s)
                if redis_url
                else MemoryLimiter()
            )
        self.limiter = limiter
        if budget_mode == "auto":
            budget_mode = "memory" if store.dialect == "sqlite" else "db"
        self.ledger: Ledger = MemoryLedger(store) if budget_mode == "memory" else DbLedger(store)
        self.usage = UsageWriter(store, interval_s=usage_flush_s)
        self._policy = Policy()
        self._keys: dict[str, _CachedKey] = {}
        self._estimates: dict[str, float] = {}  # model -> moving average of the real cost of a request
        self._compute_costs: dict[str, float] = {}  # model -> moving average of its compute-second charge
        self._leases = itertools.count()
        self._instance = f"{os.getpid()}-{id(self):x}"
        self._task: asyncio.Task[None] | None = None
        self._loaded = False
        self._refreshed_at = datetime(1970, 1, 1)  # utcnow() when the last policy load began

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.refresh)
        await self.usage.start()
        if self._task is None:
            self._task = asyncio.create_task(self._maintain(), name="aiaas-governance-maintenance")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.usage.close()
        await self.ledger.flush()
        await self.limiter.close()

    async def _maintain(self) -> None:
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(self.usage_flush_s)
            try:
                await self.ledger.flush()
                if time.monotonic() - last_refresh >= self.refresh_s:
                    await asyncio.to_thread(self.refresh)
                    last_refresh = time.monotonic()
            except Exception:
                log.exception("governance maintenance failed; retrying")

    def refresh(self) -> None:
        """Reload ownership, grants, limits and budgets from the database (blocking; call off the loop)."""
        started = utcnow()
        with self.store.session() as session:
            acl = {r.model: (r.owner_tenant_id, r.public) for r in session.scalars(select(ModelAcl))}
            grants = frozenset((g.model, g.tenant_id) for g in session.scalars(select(ModelGrant)))
            limits = {
                f"{r.scope}:{r.subject_id}": LimitSpec(r.requests_per_minute, r.units_per_minute, r.concurrency)
                for r in session.scalars(select(Limit))
            }
            rows = list(session.scalars(select(Budget)))
        states = [BudgetState(b.id, b.scope, b.subject_id, b.period, b.limit_amount, b.spent, b.period_start) for b in rows]
        self.ledger.load(states)
        self._policy = Policy(acl, grants, limits, {f"{b.scope}:{b.subject_id}": b.id for b in rows})
        self._loaded = True
        self._refreshed_at = max(self._refreshed_at, started)

    def invalidate_key(self, key_id: str | None = None) -> None:
        """Forget cached keys (one, or all) so the next request reads them from the database."""
        if key_id is None:
            self._keys.clear()
        else:
            self._keys.pop(key_id, None)

    def bootstrap_admin(self, secret: str) -> str:
        """Make the operator's key (AIAAS_ADMIN_KEY / admin.key) a valid admin key of the ``system`` tenant.

        The operator's configuration is authoritative: a changed secret replaces the stored hash, and a
        revoked bootstrap key is re-enabled. Returns the key id (``admin``)."""
        if not secret:
            raise ValueError("the bootstrap admin key must not be empty")
        digest = hash_key(secret)
        with self.store.session() as session:
            if session.get(Tenant, SYSTEM_TENANT) is None:
                session.add(Tenant(id=SYSTEM_TENANT, created_at=utcnow()))
                session.flush()
            row = session.get(ApiKey, BOOTSTRAP_KEY_ID)
            if row is None:
                session.add(
                    ApiKey(
                        id=BOOTSTRAP_KEY_ID,
                        tenant_id=SYSTEM_TENANT,
                        role="admin",
                        name="bootstrap admin",
                        secret_hash=digest,
                        created_at=utcnow(),
                    )
                )
                write_audit(session, SYSTEM_PRINCIPAL, "bootstrap_admin.create", BOOTSTRAP_KEY_ID, tenant=SYSTEM_TENANT)
            elif (row.secret_hash, row.role, row.tenant_id, row.revoked_at, row.expires_at) != (
                digest,
                "admin",
                SYSTEM_TENANT,
                None,
                None,
            ):
                row.secret_hash, row.role, row.tenant_id = digest, "admin", SYSTEM_TENANT
                row.revoked_at = row.expires_at = None
                write_audit(session, SYSTEM_PRINCIPAL, "bootstrap_admin.update", BOOTSTRAP_KEY_ID, tenant=SYSTEM_TENANT)
        self.invalidate_key(BOOTSTRAP_KEY_ID)
        return BOOTSTRAP_KEY_ID

    # --- the contract --------------------------------------------------------------------------------
    async def _cached_key(self, key_id: str) -> _CachedKey:
        entry = self._keys.get(key_id)
        now = time.monotonic()
        if entry is None or entry.deadline < now:
            record = await asyncio.to_thread(self._load_key, key_id)
            principal = None
            if record is not None and record.created_at >= self._refreshed_at - NEW_KEY_MARGIN:
                # A key made since the last policy load, e.g. by the CLI or another replica, together with its
                # limits and budget: load those now. Waiting for the periodic refresh would let the new key
                # run without its limits and spend past its budget for up to refresh_s.
                await asyncio.to_thread(self.refresh)
            if record is not None:
                principal = Principal(record.id, record.tenant_id, record.role, record.allowed_models)  # type: ignore[arg-type]
            if len(self._keys) > 100_000:  # unknown ids are cached too; bound the memory a key-spray costs
                self._keys.clear()
            entry = self._keys[key_id] = _CachedKey(now + self.key_cache_ttl_s, record, principal)
        return entry

    def _load_key(self, key_id: str) -> KeyRecord | None:
        with self.store.session() as session:
            return load_key(session, key_id)

    async def authenticate(self, authorization: str | None) -> Principal:
        token = parse_bearer(authorization)
        entry: _CachedKey | None = None
        key_id = key_id_of(token)
        if key_id is not None:
            entry = await self._cached_key(key_id)
            if entry.record is None or not verify(token, entry.record.secret_hash):
                entry = None
        if entry is None:
            entry = await self._cached_key(BOOTSTRAP_KEY_ID)
            if entry.record is None or not verify(token, entry.record.secret_hash):
                raise AuthenticationError("invalid API key", code="invalid_api_key")
        record = entry.record
        assert record is not None and entry.principal is not None
        if record.revoked:
            raise AuthenticationError("API key revoked", code="key_revoked")
        if record.expires_at is not None and record.expires_at <= utcnow():
            raise AuthenticationError("API key expired", code="key_expired")
        return entry.principal

    def can_see(self, principal: Principal, model: ModelRef) -> bool:
        if principal.allowed_models is not None and model.name not in principal.allowed_models:
            return False
        if principal.is_admin:
            return True
        acl = self._policy.acl.get(model.name)
        owner, public = acl if acl is not None else (model.owner, model.owner is None)
        return public or owner == principal.tenant_id or (model.name, principal.tenant_id) in self._policy.grants

    def owner_of(self, model: ModelRef) -> str | None:
        acl = self._policy.acl.get(model.name)
        return acl[0] if acl is not None else model.owner

    def estimate(self, model: ModelRef, units: float | None = None) -> float:
        """What a request to ``model`` is reserved against budgets before it runs.

        With ``units`` known, its exact per-request and per-unit price plus the recent average of its compute
        charge; otherwise the larger of the per-request price and the recent average cost of a request. The
        exact part is what keeps racing requests from overspending a budget when a model is priced per unit
        (a cold model's average is 0: every racing request would reserve nothing)."""
        pricing = model.pricing or {}
        per_request = float(pricing.get("per_request", 0.0))
        if units is None:
            return max(per_request, self._estimates.get(model.name, 0.0))
        return per_request + units / 1000.0 * float(pricing.get("per_1k_units", 0.0)) + self._compute_costs.get(
            model.name, 0.0
        )

    async def admit(
        self, principal: Principal, model: ModelRef, endpoint: str, units: float | None = None
    ) -> Admission:
        if not self._loaded:  # admit before start(): load the policy once rather than run without limits
            await asyncio.to_thread(self.refresh)
        if not self.can_see(principal, model):
            raise model_not_found(model.name)
        policy = self._policy
        key_scope, tenant_scope = f"key:{principal.key_id}", f"tenant:{principal.tenant_id}"
        scopes = [(s, policy.limits[s]) for s in (key_scope, tenant_scope) if s in policy.limits]
        lease = f"{self._instance}-{next(self._leases)}"
        headers = await self.limiter.acquire(scopes, lease) if scopes else {}
        # A model without a price costs nothing, so it cannot exceed a budget: an exhausted budget stops the
        # paid models only. (A priced model is refused once the budget is spent, even when its estimate is 0.)
        priced = any(model.pricing.values()) if model.pricing else False
        budget_ids = [policy.budgets[s] for s in (key_scope, tenant_scope) if s in policy.budgets] if priced else []
        reservations: list[Reservation] = []
        estimate = 0.0
        if budget_ids:
            estimate = self.estimate(model, units)
            try:
                reservations = await self.ledger.reserve(budget_ids, estimate)
            except BaseException:
                if scopes:
                    await self.limiter.release(scopes, lease, 0.0)
                raise
        return Admission(
            principal=principal,
            model=model,
            endpoint=endpoint,
            started=time.monotonic(),
            headers=headers,
            state={"scopes": scopes, "lease": lease, "reservations": reservations, "estimate": estimate},
        )

    async def finish(self, admission: Admission, outcome: Outcome) -> None:
        state = admission.state
        if state.get("finished"):
            return
        state["finished"] = True
        model, principal = admission.model, admission.principal
        # Failed requests are not billed (their units still count against units/minute).
        cost = price(model.pricing, outcome) if model.pricing and outcome.status < 400 else 0.0
        if outcome.status < 400 and model.pricing:
            previous = self._estimates.get(model.name)
            self._estimates[model.name] = cost if previous is None else 0.9 * previous + 0.1 * cost
            compute = outcome.compute_s * float(model.pricing.get("per_compute_second", 0.0))
            previous = self._compute_costs.get(model.name)
            self._compute_costs[model.name] = compute if previous is None else 0.9 * previous + 0.1 * compute
        if state.get("reservations"):
            self.ledger.settle(state["reservations"], cost)
        if state.get("scopes"):
            await self.limiter.release(state["scopes"], state["lease"], outcome.units_in + outcome.units_out)
        self.usage.record(
            UsageRow(
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                model=model.name,
                version=model.version,
                endpoint=admission.endpoint,
                status=outcome.status,
                latency_ms=(time.monotonic() - admission.started) * 1000.0,
                units_in=outcome.units_in,
                units_out=outcome.units_out,
                compute_s=outcome.compute_s,
                cost=cost,
            )
        )
