"""Usage metering: a buffered writer off the request path, and the aggregate queries behind ``/v1/usage``.

``record`` only appends to a list (no I/O, no await); a background task writes the buffer in one
transaction at least every ``interval_s`` and ``close`` writes whatever is left. A failed write puts the rows
back (up to ``max_buffer`` rows, then the oldest are dropped and counted) so a database hiccup loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select

from aiaas.store.db import Store
from aiaas.store.models import UsageDaily, UsageRecord, utcnow

log = logging.getLogger("aiaas.governance.usage")


@dataclass(slots=True)
class UsageRow:
    tenant_id: str
    key_id: str
    model: str
    version: str | None
    endpoint: str
    status: int
    latency_ms: float
    units_in: float
    units_out: float
    compute_s: float
    cost: float
    created_at: datetime = field(default_factory=utcnow)


_ROW_FIELDS = tuple(f.name for f in fields(UsageRow))
# UsageWriter._write builds each row's tuple by hand (getattr per field costs): this is that tuple's order
assert _ROW_FIELDS == ("tenant_id", "key_id", "model", "version", "endpoint", "status", "latency_ms", "units_in",
                       "units_out", "compute_s", "cost", "created_at")  # fmt: skip


class UsageWriter:
    def __init__(self, store: Store, *, interval_s: float = 1.0, max_buffer: int = 1_000_000) -> None:
        self._store = store
        self.interval_s = interval_s
        self._max_buffer = max_buffer
        self._buffer: list[UsageRow] = []
        self._lock = threading.Lock()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0
        dialect = store.engine.dialect
        marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * len(_ROW_FIELDS))
        self._insert_sql = f"INSERT INTO {UsageRecord.__tablename__} ({', '.join(_ROW_FIELDS)}) VALUES ({marks})"
        self._text_time = dialect.name == "sqlite"  # SQLite stores DateTime as text (see _write)

    def record(self, row: UsageRow) -> None:
        with self._lock:
            self._buffer.append(row)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        if self._task is None:
            self._flush_lock = asyncio.Lock()  # bind to the running loop
            self._task = asyncio.create_task(self._run(), name="aiaas-usage-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except Exception:  # keep flushing later; the rows are back in the buffer
                log.exception("writing usage records failed; retrying in %.1f s", self.interval_s)

    async def flush(self) -> int:
        async with self._flush_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return 0
            try:
                await asyncio.to_thread(self._write, rows)
            except BaseException:
                with self._lock:
                    self._buffer[:0] = rows
                    overflow = len(self._buffer) - self._max_buffer
                    if overflow > 0:
                        del self._buffer[:overflow]
                        self.dropped += overflow
                raise
            self.written += len(rows)
            return len(rows)

    def _write(self, rows: list[UsageRow]) -> None:
        # One executemany of plain tuples through the driver: SQLAlchemy's per-row parameter processing cost
        # ~12% of the GIL-holding time at ~9k requests/s (py-spy, bench/serving.py), in a thread that holds
        # the GIL the event loop needs. SQLite gets created_at in SQLAlchemy's own text format, so rows written
        # here and rows written through the ORM sort and compare alike.
        text_time = self._text_time
        params = [
            (r.tenant_id, r.key_id, r.model, r.version, r.endpoint, r.status, r.latency_ms, r.units_in,
             r.units_out, r.compute_s, r.cost, r.created_at.isoformat(" ", "microseconds") if text_time else r.created_at)
            for r in rows
        ]  # fmt: skip
        with self._store.engine.begin() as conn:
            conn.exec_driver_sql(self._insert_sql, params)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def _day(store: Store) -> ColumnElement[str]:
    if store.dialect == "postgresql":
        return func.to_char(UsageRecord.created_at, "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", UsageRecord.created_at)


def query_usage(
    store: Store,
    *,
    tenant: str | None,
    start: datetime | None,
    end: datetime | None,
    group_by: str,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Totals per model, key or UTC day within [start, end), for one tenant (or all when None): the raw rows
    plus the daily rollups of rows past retention (whole days, see ``rollup``)."""
    totals: dict[str, list[float]] = {}  # group -> [requests, errors, units_in, units_out, compute_s, cost, latency]
    with store.session() as session:
        for stmt in (_raw_query(store, tenant, start, end, group_by, key), _daily_query(tenant, start, end, group_by, key)):
            for row in session.execute(stmt):
                group = row.group.isoformat() if isinstance(row.group, date) else row.group
                acc = totals.setdefault(group, [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0])
                for i, value in enumerate(row[1:]):  # PostgreSQL sums integers as NUMERIC (Decimal)
                    acc[i] += (int(value) if i < 2 else float(value)) if value is not None else 0
    return [
        {
            group_by: group,
            "requests": int(acc[0]),
            "errors": int(acc[1]),
            "units_in": float(acc[2]),
            "units_out": float(acc[3]),
            "compute_s": float(acc[4]),
            "cost": round(float(acc[5]), 10),
            "avg_latency_ms": round(float(acc[6]) / acc[0], 3) if acc[0] else 0.0,
        }
        for group, acc in sorted(totals.items())
    ]


def _raw_query(
    store: Store, tenant: str | None, start: datetime | None, end: datetime | None, group_by: str, key: str | None
) -> Select[*tuple[Any, ...]]:
    r = UsageRecord
    group = {"model": r.model, "key": r.key_id}.get(group_by)
    group_col = group if group is not None else _day(store)
    stmt = select(
        group_col.label("group"), func.count(), func.sum(case((r.status >= 400, 1), else_=0)), func.sum(r.units_in),
        func.sum(r.units_out), func.sum(r.compute_s), func.sum(r.cost), func.sum(r.latency_ms),
    )  # fmt: skip
    if tenant is not None:
        stmt = stmt.where(r.tenant_id == tenant)
    if key is not None:
        stmt = stmt.where(r.key_id == key)
    if start is not None:
        stmt = stmt.where(r.created_at >= start)
    if end is not None:
        stmt = stmt.where(r.created_at < end)
    return stmt.group_by(group_col)


def _daily_query(
    tenant: str | None, start: datetime | None, end: datetime | None, group_by: str, key: str | None
) -> Select[*tuple[Any, ...]]:
    d = UsageDaily
    group_col = {"model": d.model, "key": d.key_id}.get(group_by, d.day)
    stmt = select(
        group_col.label("group"), func.sum(d.requests), func.sum(d.errors), func.sum(d.units_in), func.sum(d.units_out),
        func.sum(d.compute_s), func.sum(d.cost), func.sum(d.latency_ms),
    )  # fmt: skip
    if tenant is not None:
        stmt = stmt.where(d.tenant_id == tenant)
    if key is not None:
        stmt = stmt.where(d.key_id == key)
    if start is not None:  # a day counts when its midnight lies in [start, end)
        stmt = stmt.where(d.day >= (start.date() if start.time() == time() else start.date() + timedelta(days=1)))
    if end is not None:
        stmt = stmt.where(d.day < (end.date() if end.time() == time() else end.date() + timedelta(days=1)))
    return stmt.group_by(group_col)
