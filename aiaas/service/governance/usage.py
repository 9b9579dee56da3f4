"""Usage metering: a buffered writer off the request path, and the aggregate queries behind ``/v1/usage``.

``record`` only appends to a list (no I/O, no await); a background task writes the buffer in one
transaction at least every ``interval_s`` and ``close`` writes whatever is left. A failed write puts the rows
back (up to ``max_buffer`` rows, then the oldest are dropped and counted) so a database hiccup loses nothing.

The same transaction adds the batch to ``usage_hourly``: one row per (UTC hour, tenant, key, model) with the
exact counts and sums, upserted with ``INSERT .. ON CONFLICT DO UPDATE SET n = n + excluded.n`` (atomic on
PostgreSQL and SQLite >= 3.24, in key order so two writers cannot deadlock). ``query_usage`` sums whole hours
from that table and raw rows only for the partial hours at the edges of the requested range, so its cost no
longer grows with the number of raw rows -- and every total stays exact, because each instant of the range
is read from exactly one of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, or_, select

from aiaas.store.db import Store
from aiaas.store.models import UsageHourly, UsageRecord, utcnow

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
# UsageWriter.insert_rows builds each row's tuple by hand (getattr per field costs): this is that tuple's order
assert _ROW_FIELDS == (
    "tenant_id",
    "key_id",
    "model",
    "version",
    "endpoint",
    "status",
    "latency_ms",
    "units_in",
    "units_out",
    "compute_s",
    "cost",
    "created_at",
)


_SUMS = ("requests", "errors", "units_in", "units_out", "compute_s", "cost", "latency_ms")


def _hourly(rows: list[UsageRow], text_time: bool) -> list[tuple[Any, ...]]:
    """The batch's totals per (UTC hour, tenant, key, model), in key order (the upsert's lock order). ~0.5 us a
    row: this runs in the writer thread, holding the GIL the event loop needs."""
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        at = r.created_at
        k = (at.year, at.month, at.day, at.hour, r.tenant_id, r.key_id, r.model)
        t = totals.get(k)
        if t is None:
            totals[k] = [
                1,
                int(r.status >= 400),
                r.units_in or 0.0,
                r.units_out or 0.0,
                r.compute_s or 0.0,
                r.cost or 0.0,
                r.latency_ms or 0.0,
            ]
        else:
            t[0] += 1
            t[1] += r.status >= 400
            t[2] += r.units_in or 0.0
            t[3] += r.units_out or 0.0
            t[4] += r.compute_s or 0.0
            t[5] += r.cost or 0.0
            t[6] += r.latency_ms or 0.0
    out = []
    for (year, month, day, hour, tenant, key, model), t in sorted(totals.items()):
        start = datetime(year, month, day, hour)
        out.append((start.isoformat(" ", "microseconds") if text_time else start, tenant, key, model, *t))
    return out


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
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([mark] * len(_ROW_FIELDS))
        self._insert_sql = f"INSERT INTO {UsageRecord.__tablename__} ({', '.join(_ROW_FIELDS)}) VALUES ({marks})"
        self._text_time = dialect.name == "sqlite"  # SQLite stores DateTime as text (see insert_rows)
        h = UsageHourly.__tablename__
        self._upsert_sql = (
            f"INSERT INTO {h} (hour, tenant_id, key_id, model, {', '.join(_SUMS)}) VALUES ({', '.join([mark] * 11)}) "
            "ON CONFLICT (hour, tenant_id, key_id, model) DO UPDATE SET "
            + ", ".join(f"{c} = {h}.{c} + excluded.{c}" for c in _SUMS)
        )

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
        with self._store.engine.begin() as conn:  # raw rows and their hourly totals: both or neither
            self.insert_rows(conn, rows)
            self.add_hourly(conn, rows)

    def insert_rows(self, conn: Connection, rows: list[UsageRow]) -> None:
        # One executemany of plain tuples through the driver: SQLAlchemy's per-row parameter processing cost
        # ~12% of the GIL-holding time at ~9k requests/s (py-spy, bench/serving.py), in a thread that holds
        # the GIL the event loop needs. SQLite gets created_at in SQLAlchemy's own text format, so rows written
        # here and rows written through the ORM sort and compare alike.
        text_time = self._text_time
        params = [
            (
                r.tenant_id,
                r.key_id,
                r.model,
                r.version,
                r.endpoint,
                r.status,
                r.latency_ms,
                r.units_in,
                r.units_out,
                r.compute_s,
                r.cost,
                r.created_at.isoformat(" ", "microseconds") if text_time else r.created_at,
            )
            for r in rows
        ]
        conn.exec_driver_sql(self._insert_sql, params)

    def add_hourly(self, conn: Connection, rows: list[UsageRow]) -> None:
        """Add the rows to their hours' totals (one upsert per hour, tenant, key and model in the batch)."""
        conn.exec_driver_sql(self._upsert_sql, _hourly(rows, self._text_time))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def _day(store: Store, column: Any) -> ColumnElement[str]:
    if store.dialect == "postgresql":
        return func.to_char(column, "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    floor = _floor_hour(t)
    if floor == t:
        return floor
    return floor + timedelta(hours=1) if floor < datetime.max - timedelta(hours=1) else datetime.max  # year 9999


def split_range(
    start: datetime | None, end: datetime | None
) -> tuple[tuple[datetime | None, datetime | None] | None, list[tuple[datetime | None, datetime | None]]]:
    """[start, end) as the whole UTC hours to read from ``usage_hourly`` (None: none) and the partial-hour
    ranges to read from raw rows; together they cover every instant of [start, end) exactly once."""
    lo = None if start is None else _ceil_hour(start)
    hi = None if end is None else _floor_hour(end)
    if lo is not None and hi is not None and lo >= hi:  # no whole hour inside: raw rows only
        return None, [(start, end)]
    raw: list[tuple[datetime | None, datetime | None]] = []
    if start is not None and start != lo:
        raw.append((start, lo))
    if end is not None and end != hi:
        raw.append((hi, end))
    return (lo, hi), raw


def query_usage(
    store: Store,
    *,
    tenant: str | None,
    start: datetime | None,
    end: datetime | None,
    group_by: str,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Totals per model, key or UTC day within [start, end), for one tenant (or all when None): whole UTC
    hours from ``usage_hourly``, the partial hours at the edges from raw rows (see ``split_range``)."""
    hours, raw = split_range(start, end)
    stmts = [] if hours is None else [_hourly_query(store, tenant, *hours, group_by, key)]
    if raw:
        stmts.append(raw_query(store, tenant, raw, group_by, key))
    return answer(store, stmts, group_by)


def answer(store: Store, stmts: list[Select[*tuple[Any, ...]]], group_by: str) -> list[dict[str, Any]]:
    """The rows of ``/v1/usage`` from queries that each yield (group, requests, errors, units_in, units_out,
    compute_s, cost, latency sum) per group, over disjoint sets of requests."""
    totals: dict[str, list[float]] = {}  # group -> [requests, errors, units_in, units_out, compute_s, cost, latency]
    with store.session() as session:
        for stmt in stmts:
            for row in session.execute(stmt):
                acc = totals.setdefault(row.group, [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0])
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


def raw_query(
    store: Store,
    tenant: str | None,
    ranges: list[tuple[datetime | None, datetime | None]],
    group_by: str,
    key: str | None,
) -> Select[*tuple[Any, ...]]:
    r = UsageRecord
    group = {"model": r.model, "key": r.key_id}.get(group_by)
    group_col = group if group is not None else _day(store, r.created_at)
    stmt = select(
        group_col.label("group"),
        func.count(),
        func.sum(case((r.status >= 400, 1), else_=0)),
        func.sum(r.units_in),
        func.sum(r.units_out),
        func.sum(r.compute_s),
        func.sum(r.cost),
        func.sum(r.latency_ms),
    )
    if tenant is not None:
        stmt = stmt.where(r.tenant_id == tenant)
    if key is not None:
        stmt = stmt.where(r.key_id == key)
    stmt = stmt.where(or_(*(and_(*_between(r.created_at, lo, hi)) for lo, hi in ranges)))
    return stmt.group_by(group_col)


def _hourly_query(
    store: Store, tenant: str | None, lo: datetime | None, hi: datetime | None, group_by: str, key: str | None
) -> Select[*tuple[Any, ...]]:
    h = UsageHourly
    group = {"model": h.model, "key": h.key_id}.get(group_by)
    group_col = group if group is not None else _day(store, h.hour)
    stmt = select(
        group_col.label("group"),
        func.sum(h.requests),
        func.sum(h.errors),
        func.sum(h.units_in),
        func.sum(h.units_out),
        func.sum(h.compute_s),
        func.sum(h.cost),
        func.sum(h.latency_ms),
    )
    if tenant is not None:
        stmt = stmt.where(h.tenant_id == tenant)
    if key is not None:
        stmt = stmt.where(h.key_id == key)
    return stmt.where(*_between(h.hour, lo, hi)).group_by(group_col)


def _between(column: Any, lo: datetime | None, hi: datetime | None) -> list[ColumnElement[bool]]:
    return [c for c in (None if lo is None else column >= lo, None if hi is None else column < hi) if c is not None]
