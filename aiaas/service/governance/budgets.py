"""Spending budgets per tenant and per key, reserved before a request runs and settled after.

``admit`` reserves an *estimate* of the request's cost (the model's ``per_request`` price, or the recent
average cost of the model when that is higher) and is refused with 402 unless ``spent + estimate <= limit``
(and ``spent < limit``) for every budget that applies; ``finish`` settles ``actual - estimate``. Racing
requests therefore overspend by at most the difference between their real and estimated cost -- at most one
request's cost when pricing is per request, which is the usual way to price bounded budgets.

Two ledgers, one contract:

* ``MemoryLedger`` (default for SQLite): the spent amounts live in this process under a lock, loaded from the
  database at start and written back by the background flush every second. Reserving costs a dict lookup,
  which keeps ``admit`` far below the 0.3 ms budget. Correct only while one process serves the database,
  which is how SQLite is deployed (one file, one server).
* ``DbLedger`` (default for PostgreSQL, i.e. several replicas): each reservation is one atomic conditional
  ``UPDATE budgets SET spent = spent + :c WHERE id = :id AND spent + :c <= limit_amount AND spent <
  limit_amount`` -- the row lock serialises racing replicas and the WHERE clause is re-checked after the lock
  wait, so two replicas cannot both take the last slot. It runs only when a budget applies to a priced model;
  the settlement (actual - estimate) is deferred to the background flush, so ``finish`` never touches the
  database. Reservations commit without waiting for the WAL flush (``synchronous_commit = off``): a
  PostgreSQL crash may forget the last fraction of a second of them, as it would buffered usage.

Periods are calendar periods in UTC (day, month) or ``total``; an elapsed period restarts at zero.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import Table, select, text, update

from aiaas.errors import PaymentRequired
from aiaas.store.db import Store
from aiaas.store.models import Budget, utcnow

BudgetMode = Literal["memory", "db"]


def period_start(period: str, now: datetime) -> datetime:
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return datetime(1970, 1, 1)


def next_reset(period: str, start: datetime) -> datetime | None:
    if period == "day":
        return start + timedelta(days=1)
    if period == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return None


@dataclass(slots=True)
class BudgetState:
    id: int
    scope: str  # key | tenant
    subject: str
    period: str
    limit: float
    spent: float
    start: datetime

    def roll(self, now: datetime) -> bool:
        current = period_start(self.period, now)
        if current > self.start:
            self.start, self.spent = current, 0.0
            return True
        return False


def exhausted(state: BudgetState, spent: float) -> PaymentRequired:
    reset = next_reset(state.period, state.start)
    when = f"it resets at {reset.isoformat()}Z" if reset else "it is a total budget and does not reset"
    per = {"day": "per day", "month": "per month", "total": "in total"}[state.period]
    return PaymentRequired(
        f"{state.scope} budget of {state.scope} '{state.subject}' exhausted: spent {spent:.4f} of the limit "
        f"{state.limit:.4f} {per}; {when}",
        code="budget_exceeded",
        param=state.scope,
    )


def _fits(spent: float, limit: float, cost: float) -> bool:
    return spent < limit and spent + cost <= limit + 1e-12


@dataclass(slots=True)
class Reservation:
    budget_id: int
    amount: float
    start: datetime


class Ledger(ABC):
    """Shared state: the budgets known from the database, and settlements waiting for the flush."""

    mode: BudgetMode

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._budgets: dict[int, BudgetState] = {}
        self._pending: dict[tuple[int, datetime], float] = {}  # (id, period start) -> delta to add

    def load(self, rows: list[BudgetState]) -> None:
        """Replace the budget definitions (limits, periods) with the database's; subclasses decide about
        ``spent``."""
        with self._lock:
            fresh: dict[int, BudgetState] = {}
            for row in rows:
                fresh[row.id] = self._merge(self._budgets.get(row.id), row)
            self._budgets = fresh

    def _merge(self, old: BudgetState | None, row: BudgetState) -> BudgetState:
        return row

    def get(self, budget_id: int) -> BudgetState | None:
        return self._budgets.get(budget_id)

    @abstractmethod
    async def reserve(self, budget_ids: list[int], amount: float) -> list[Reservation]:
        """Reserve ``amount`` on every budget or raise ``PaymentRequired`` naming the exhausted one."""

    @abstractmethod
    def settle(self, reservations: list[Reservation], actual: float) -> None:
        """Replace the reserved amounts by the actual cost (no I/O)."""

    @abstractmethod
    async def flush(self) -> None:
        """Write what changed since the last flush to the database."""


class MemoryLedger(Ledger):
    mode: BudgetMode = "memory"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._dirty: set[int] = set()

    def _merge(self, old: BudgetState | None, row: BudgetState) -> BudgetState:
        if old is not None and old.period == row.period:
            row.spent, row.start = old.spent, old.start  # this process is the authority on spent
        return row

    async def reserve(self, budget_ids: list[int], amount: float) -> list[Reservation]:
        return self.reserve_sync(budget_ids, amount)

    def reserve_sync(self, budget_ids: list[int], amount: float) -> list[Reservation]:
        now = utcnow()
        with self._lock:
            states = [self._budgets[i] for i in budget_ids if i in self._budgets]
            for state in states:
                if state.roll(now):
                    self._dirty.add(state.id)
                if not _fits(state.spent, state.limit, amount):
                    raise exhausted(state, state.spent)
            for state in states:
                state.spent += amount
                self._dirty.add(state.id)
            return [Reservation(s.id, amount, s.start) for s in states]

    def settle(self, reservations: list[Reservation], actual: float) -> None:
        with self._lock:
            for r in reservations:
                state = self._budgets.get(r.budget_id)
                if state is not None and state.start == r.start and actual != r.amount:
                    state.spent = max(0.0, state.spent + actual - r.amount)
                    self._dirty.add(state.id)

    async def flush(self) -> None:
        with self._lock:
            rows = [(s.id, s.spent, s.start) for i in self._dirty if (s := self._budgets.get(i)) is not None]
            self._dirty.clear()
        if rows:
            try:
                await asyncio.to_thread(self._write, rows)
            except Exception:
                with self._lock:
                    self._dirty.update(r[0] for r in rows)
                raise

    def _write(self, rows: list[tuple[int, float, datetime]]) -> None:
        with self._store.session() as session:
            for budget_id, spent, start in rows:
                session.execute(update(Budget).where(Budget.id == budget_id).values(spent=spent, period_start=start))


class DbLedger(Ledger):
    mode: BudgetMode = "db"

    async def reserve(self, budget_ids: list[int], amount: float) -> list[Reservation]:
        ids = [i for i in budget_ids if i in self._budgets]
        if not ids:
            return []
        return await asyncio.to_thread(self._reserve, ids, amount)

    def _reserve(self, ids: list[int], amount: float) -> list[Reservation]:
        now = utcnow()
        out: list[Reservation] = []
        table = cast(Table, Budget.__table__)
        c = table.c
        # Core, not the ORM: this runs once per request whenever a budget applies.
        with self._store.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Waiting for the WAL flush of every reservation cost ~10 ms per request. Turning that off for
                # this transaction changes nothing about isolation or the row lock (racing replicas still
                # serialise, and a commit is visible at once); only a PostgreSQL crash may forget the last
                # fraction of a second of reservations -- the bound buffered usage rows already have.
                conn.execute(text("SET LOCAL synchronous_commit = off"))
            for budget_id in sorted(ids):  # a fixed lock order: no deadlocks between key and tenant budgets
                state = self._budgets[budget_id]
                start = period_start(state.period, now)
                if state.start < start:  # a new period as far as this process knows: restart the count once
                    conn.execute(
                        update(table)
                        .where(c.id == budget_id, c.period_start < start)
                        .values(spent=0.0, period_start=start)
                    )
                result = conn.execute(
                    update(table)
                    .where(c.id == budget_id, c.spent < c.limit_amount, c.spent + amount <= c.limit_amount + 1e-12)
                    .values(spent=c.spent + amount)
                    .returning(c.spent, c.limit_amount)
                ).first()
                if result is None:
                    row = conn.execute(select(table).where(c.id == budget_id)).first()
                    if row is None:
                        continue  # deleted meanwhile: no budget, nothing to reserve
                    view = BudgetState(
                        row.id, row.scope, row.subject_id, row.period, row.limit_amount, row.spent, start
                    )
                    raise exhausted(view, view.spent)  # leaving the block rolls back earlier reservations
                with self._lock:
                    state.spent, state.limit, state.start = result[0], result[1], start
                out.append(Reservation(budget_id, amount, start))
        return out

    def settle(self, reservations: list[Reservation], actual: float) -> None:
        with self._lock:
            for r in reservations:
                if actual != r.amount:
                    key = (r.budget_id, r.start)
                    self._pending[key] = self._pending.get(key, 0.0) + actual - r.amount

    async def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            try:
                await asyncio.to_thread(self._write, pending)
            except Exception:
                with self._lock:
                    for k, v in pending.items():
                        self._pending[k] = self._pending.get(k, 0.0) + v
                raise

    def _write(self, pending: dict[tuple[int, datetime], float]) -> None:
        with self._store.session() as session:
            for (budget_id, start), delta in sorted(pending.items()):
                session.execute(
                    update(Budget)
                    .where(Budget.id == budget_id, Budget.period_start == start)
                    .values(spent=Budget.spent + delta)
                )
