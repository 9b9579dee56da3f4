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

Abuse and outages (docs/resilience.md): unknown key ids are remembered in a bounded negative cache, invalid
keys per client address are braked (``authguard``), Redis trouble is handled by ``limitstore``, a database
that cannot be reached answers 503 (known keys are then served from the cache, stale), and raw usage rows
past ``usage_retention_days`` are rolled into daily totals (``rollup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select

from aiaas.errors import AuthenticationError, NotFound
from aiaas.service.governance.audit import write_audit
from aiaas.service.governance.authguard import FailedAuthLimiter
from aiaas.service.governance.base import (
    Admission,
    Governance,
    Grant,
    ModelRef,
    Outcome,
    Principal,
    parse_bearer,
)
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
from aiaas.service.governance.limits import Limiter, LimitSpec, MemoryLimiter, RateState, RedisLimiter
from aiaas.service.governance.limitstore import FailureMode, ResilientLimiter
from aiaas.service.governance.rollup import retention_cutoff, rollup_usage
from aiaas.service.governance.usage import UsageRow, UsageWriter
from aiaas.store.db import DatabaseUnavailable, Store, is_unavailable
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
    record: KeyRecord
    principal: Principal


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
        redis_timeout_s: float = 1.0,
        redis_failure_mode: FailureMode = "closed",
        redis_retry_s: float = 1.0,
        auth_failures_per_minute: int = 60,
        negative_key_cache_size: int = 10_000,
        negative_key_cache_ttl_s: float = 10.0,
        usage_retention_days: float = 0.0,
        usage_rollup_interval_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,  # the key cache's clock (tests pass a fake one)
    ) -> None:
        self.store = store
        self._clock = clock
        self.key_cache_ttl_s = key_cache_ttl_s
        self.refresh_s = refresh_s
        self.usage_flush_s = usage_flush_s
        if limiter is None and redis_url:
            shared = RedisLimiter(
                redis_url, prefix=redis_prefix, lease_s=concurrency_lease_s, timeout_s=redis_timeout_s
            )
            limiter = ResilientLimiter(
                shared, mode=redis_failure_mode, timeout_s=redis_timeout_s, retry_s=redis_retry_s
            )
        self.limiter = limiter if limiter is not None else MemoryLimiter()
        self.auth_guard = FailedAuthLimiter(auth_failures_per_minute)
        # ids of keys that do not exist -> monotonic deadline; bounded, oldest first out
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self.negative_key_cache_size = negative_key_cache_size
        self.negative_key_cache_ttl_s = negative_key_cache_ttl_s
        self.key_lookups = 0  # database lookups of a key id (the cost a key spray is meant not to multiply)
        self._health: tuple[float, dict[str, str | None]] | None = None  # (when probed, result)
        self._health_lock = asyncio.Lock()
        self.usage_retention_days = usage_retention_days  # 0: raw usage rows are kept forever
        self.usage_rollup_interval_s = usage_rollup_interval_s
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
        last_rollup = -math.inf
        while True:
            await asyncio.sleep(self.usage_flush_s)
            try:
                await self.ledger.flush()
                if time.monotonic() - last_refresh >= self.refresh_s:
                    await asyncio.to_thread(self.refresh)
                    last_refresh = time.monotonic()
                if self.usage_retention_days > 0 and time.monotonic() - last_rollup >= self.usage_rollup_interval_s:
                    last_rollup = time.monotonic()
                    await asyncio.to_thread(self.rollup_usage)
            except Exception as exc:
                if is_unavailable(exc):  # a restart or outage: one line, not a traceback every second
                    log.warning("governance maintenance: the database is unavailable (%s); retrying", str(exc)[:200])
                else:
                    log.exception("governance maintenance failed; retrying")

    def rollup_usage(self, now: datetime | None = None) -> int:
        """Delete raw usage rows past ``usage_retention_days``; ``usage_hourly`` keeps their totals (blocking)."""
        if self.usage_retention_days <= 0:
            return 0
        moved = rollup_usage(self.store, retention_cutoff(self.usage_retention_days, now))
        if moved:
            log.info("usage retention: %d raw usage rows deleted (their hourly totals stay)", moved)
        return moved

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
        states = [
            BudgetState(b.id, b.scope, b.subject_id, b.period, b.limit_amount, b.spent, b.period_start) for b in rows
        ]
        self.ledger.load(states)
        self._policy = Policy(acl, grants, limits, {f"{b.scope}:{b.subject_id}": b.id for b in rows})
        self._loaded = True
        self._refreshed_at = max(self._refreshed_at, started)

    def invalidate_key(self, key_id: str | None = None) -> None:
        """Forget cached keys (one, or all) so the next request reads them from the database."""
        if key_id is None:
            self._keys.clear()
            self._unknown.clear()
        else:
            self._keys.pop(key_id, None)
            self._unknown.pop(key_id, None)

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
    async def _cached_key(self, key_id: str) -> _CachedKey | None:
        """The key with this id, from the cache or one database lookup; None when no such key exists.

        Unknown ids are remembered in a bounded negative cache for ``negative_key_cache_ttl_s``; while the
        database is unreachable an expired entry is served stale rather than failing every request."""
        now = self._clock()
        entry = self._keys.get(key_id)
        if entry is not None and entry.deadline >= now:
            return entry
        unknown = self._unknown.get(key_id)
        if unknown is not None:
            if unknown >= now:
                return None
            del self._unknown[key_id]
        try:
            self.key_lookups += 1
            record = await asyncio.to_thread(self._load_key, key_id)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            if entry is not None:  # stale-if-error: nobody can revoke it while the database is down either
                entry.deadline = now + 1.0
                return entry
            raise DatabaseUnavailable(
                "the database is unavailable, so this API key cannot be checked; retry shortly"
            ) from exc
        if record is None:
            self._unknown[key_id] = now + self.negative_key_cache_ttl_s
            while len(self._unknown) > self.negative_key_cache_size:
                self._unknown.popitem(last=False)
            self._keys.pop(key_id, None)
            return None
        if record.created_at >= self._refreshed_at - NEW_KEY_MARGIN:
            # A key made since the last policy load, e.g. by the CLI or another replica, together with its
            # limits and budget: load those now. Waiting for the periodic refresh would let the new key
            # run without its limits and spend past its budget for up to refresh_s.
            await asyncio.to_thread(self.refresh)
        principal = Principal(record.id, record.tenant_id, record.role, record.allowed_models)  # type: ignore[arg-type]
        if len(self._keys) > 100_000:  # only real keys are cached here; bound the memory all the same
            self._keys.clear()
        entry = self._keys[key_id] = _CachedKey(now + self.key_cache_ttl_s, record, principal)
        return entry

    def _load_key(self, key_id: str) -> KeyRecord | None:
        with self.store.session() as session:
            return load_key(session, key_id)

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        token = parse_bearer(authorization)
        self.auth_guard.check(client)
        entry: _CachedKey | None = None
        key_id = key_id_of(token)
        if key_id is not None:
            entry = await self._cached_key(key_id)
            if entry is not None and not verify(token, entry.record.secret_hash):
                entry = None
        if entry is None:
            entry = await self._cached_key(BOOTSTRAP_KEY_ID)
            if entry is None or not verify(token, entry.record.secret_hash):
                self.auth_guard.failed(client)
                raise AuthenticationError("invalid API key", code="invalid_api_key")
        record = entry.record
        if record.revoked:
            raise AuthenticationError("API key revoked", code="key_revoked")
        if record.expires_at is not None and record.expires_at <= utcnow():
            raise AuthenticationError("API key expired", code="key_expired")
        return entry.principal

    async def dependencies(self) -> dict[str, str | None]:
        """Each dependency -> None when it answers, else a short reason; probed at most once a second."""
        async with self._health_lock:  # one probe at a time: a flood of readiness checks waits for it
            if self._health is not None and time.monotonic() - self._health[0] < 1.0:
                return self._health[1]
            health = await self._probe_dependencies()
            self._health = (time.monotonic(), health)
            return health

    async def _probe_dependencies(self) -> dict[str, str | None]:
        health: dict[str, str | None] = {"database": None}
        try:
            async with asyncio.timeout(2.0):
                await asyncio.to_thread(self._ping_database)
        except Exception as exc:
            health["database"] = "unavailable"
            log.warning("readiness: the database is unavailable (%s)", f"{type(exc).__name__}: {exc}"[:200])
        if isinstance(self.limiter, ResilientLimiter):
            health[self.limiter.name] = None
            try:
                await self.limiter.ping()
            except Exception as exc:
                health[self.limiter.name] = "unavailable"
                log.warning("readiness: the rate-limit store is unavailable (%s)", f"{type(exc).__name__}: {exc}"[:200])
        return health

    def _ping_database(self) -> None:
        with self.store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

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
        return (
            per_request
            + units / 1000.0 * float(pricing.get("per_1k_units", 0.0))
            + self._compute_costs.get(model.name, 0.0)
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
        limits = await self.limiter.acquire(scopes, lease) if scopes else RateState()
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
            limits=limits,
            headers=limits.headers(),
            grant=Grant(scopes=scopes, lease=lease, reservations=reservations, estimate=estimate),
        )

    async def finish(self, admission: Admission, outcome: Outcome) -> None:
        grant = admission.grant
        if grant.finished:
            return
        grant.finished = True
        model, principal = admission.model, admission.principal
        # Failed requests are not billed (their units still count against units/minute).
        cost = price(model.pricing, outcome) if model.pricing and outcome.status < 400 else 0.0
        if outcome.status < 400 and model.pricing:
            previous = self._estimates.get(model.name)
            self._estimates[model.name] = cost if previous is None else 0.9 * previous + 0.1 * cost
            compute = outcome.compute_s * float(model.pricing.get("per_compute_second", 0.0))
            previous = self._compute_costs.get(model.name)
            self._compute_costs[model.name] = compute if previous is None else 0.9 * previous + 0.1 * compute
        if grant.reservations:
            self.ledger.settle(grant.reservations, cost)
        if grant.scopes:
            await self.limiter.release(grant.scopes, grant.lease, outcome.units_in + outcome.units_out)
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
