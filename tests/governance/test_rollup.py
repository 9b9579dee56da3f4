"""Hourly usage totals and retention: /v1/usage totals stay exact for every grouping and filter, across hour
edges and after raw rows past retention are deleted (SQLite and PostgreSQL). The values are binary fractions,
so any summation order gives the same floats: exact equality."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from aiaas.service.governance.rollup import retention_cutoff, rollup_usage
from aiaas.service.governance.usage import UsageRow, UsageWriter, query_usage, split_range
from aiaas.store.db import Store
from aiaas.store.models import UsageHourly, UsageRecord

from .conftest import DbTarget

NOW = datetime(2026, 12, 3, 15, 30)
GROUPS = ("model", "key", "day")


def make_rows(n: int, seed: int = 7, spread: timedelta = timedelta(days=9)) -> list[UsageRow]:
    rng = random.Random(seed)
    span = int(spread.total_seconds() * 1000)
    return [
        UsageRow(
            tenant_id=rng.choice(["acme", "globex"]),
            key_id=rng.choice(["k1", "k2", "k3"]),
            model=rng.choice(["a", "b"]),
            version="1",
            endpoint="infer",
            status=rng.choice([200, 200, 200, 429, 500]),
            latency_ms=rng.randint(1, 64) / 8,
            units_in=rng.randint(0, 16),
            units_out=rng.randint(0, 4) / 4,
            compute_s=rng.randint(0, 32) / 1024,
            cost=rng.randint(0, 8) / 64,
            created_at=NOW - timedelta(milliseconds=rng.randrange(span)),
        )
        for _ in range(n)
    ]


def fill(store: Store, n: int = 1500, **kw: Any) -> list[UsageRow]:
    rows = make_rows(n, **kw)
    writer = UsageWriter(store)
    for i in range(0, n, 400):  # several batches: the same hour is upserted more than once
        writer._write(rows[i : i + 400])
    return rows


def expected(
    rows: list[UsageRow],
    group_by: str,
    tenant: str | None,
    start: datetime | None,
    end: datetime | None,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """The answer computed straight from the rows, in Python."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        if (tenant is not None and r.tenant_id != tenant) or (key is not None and r.key_id != key):
            continue
        if (start is not None and r.created_at < start) or (end is not None and r.created_at >= end):
            continue
        g = {"model": r.model, "key": r.key_id}.get(group_by) or r.created_at.strftime("%Y-%m-%d")
        a = acc.setdefault(g, [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0])
        for i, v in enumerate((1, r.status >= 400, r.units_in, r.units_out, r.compute_s, r.cost, r.latency_ms)):
            a[i] += v
    return [
        {
            group_by: g,
            "requests": int(a[0]),
            "errors": int(a[1]),
            "units_in": a[2],
            "units_out": a[3],
            "compute_s": a[4],
            "cost": round(a[5], 10),
            "avg_latency_ms": round(a[6] / a[0], 3),
        }
        for g, a in sorted(acc.items())
    ]


QUERIES: list[dict[str, Any]] = [
    {"tenant": None, "start": None, "end": None},
    {"tenant": "acme", "start": None, "end": None},
    {"tenant": "globex", "start": datetime(2026, 11, 26), "end": datetime(2026, 12, 2)},  # whole days
    {"tenant": "acme", "start": datetime(2026, 11, 29), "end": None, "key": "k2"},
    {"tenant": None, "start": datetime(2026, 11, 28, 7), "end": datetime(2026, 12, 1, 19)},  # whole hours
]
EDGES: list[dict[str, Any]] = [  # partial hours at one or both edges, both in one hour, adjacent hours
    {"tenant": None, "start": datetime(2026, 11, 28, 7, 13, 5, 250), "end": datetime(2026, 12, 1, 19, 59, 59)},
    {"tenant": "acme", "start": datetime(2026, 11, 30, 0, 0, 0, 1), "end": None, "key": "k3"},
    {"tenant": "globex", "start": None, "end": datetime(2026, 12, 2, 23, 30)},
    {"tenant": None, "start": datetime(2026, 12, 1, 10, 5), "end": datetime(2026, 12, 1, 10, 55)},
    {"tenant": "acme", "start": datetime(2026, 12, 1, 10, 5), "end": datetime(2026, 12, 1, 11, 55)},
    {"tenant": None, "start": datetime(2026, 12, 1, 10, 5), "end": datetime(2026, 12, 1, 11)},
    {"tenant": None, "start": datetime(2026, 12, 1, 10), "end": datetime(2026, 12, 1, 10, 0, 1), "key": "k1"},
]


def answers(store: Store, queries: list[dict[str, Any]] = QUERIES) -> list[list[dict[str, Any]]]:
    return [query_usage(store, group_by=g, **q) for q in queries for g in GROUPS]


def count(store: Store, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_split_range_covers_every_instant_once() -> None:
    h = datetime(2026, 12, 1, 10)
    assert split_range(None, None) == ((None, None), [])
    assert split_range(h, h + timedelta(hours=3)) == ((h, h + timedelta(hours=3)), [])
    t0, t1 = h + timedelta(minutes=5), h + timedelta(hours=2, minutes=1)
    assert split_range(t0, t1) == (
        (h + timedelta(hours=1), h + timedelta(hours=2)),
        [(t0, h + timedelta(hours=1)), (h + timedelta(hours=2), t1)],
    )
    assert split_range(t0, h + timedelta(minutes=50)) == (None, [(t0, h + timedelta(minutes=50))])
    assert split_range(t0, None) == ((h + timedelta(hours=1), None), [(t0, h + timedelta(hours=1))])
    last = datetime(9999, 12, 31, 23, 30)  # no next hour to round up to
    assert split_range(last, None) == ((datetime.max, None), [(last, datetime.max)])


def test_totals_are_exact_for_every_grouping_and_filter_across_hour_edges(store: Store) -> None:
    rows = fill(store)
    for q in QUERIES + EDGES:
        for g in GROUPS:
            assert query_usage(store, group_by=g, **q) == expected(rows, g, **q), (q, g)
    assert count(store, UsageRecord) == 1500
    assert count(store, UsageHourly) <= 9 * 24 * 2 * 3 * 2 + 2 * 3 * 2  # hours x tenants x keys x models


def test_the_query_reads_raw_rows_only_for_partial_edge_hours(store: Store) -> None:
    """Raw rows inside whole hours are never read: deleting them behind the buckets' back changes no answer,
    and the raw rows an edge query reads are those of its two partial hours only."""
    rows = fill(store, 3000, spread=timedelta(hours=30))
    q = {"tenant": None, "start": NOW - timedelta(hours=20, minutes=17), "end": NOW - timedelta(hours=2, minutes=41)}
    before = [query_usage(store, group_by=g, **q) for g in GROUPS]
    assert before == [expected(rows, g, **q) for g in GROUPS]
    whole, raw = split_range(q["start"], q["end"])
    assert whole is not None and len(raw) == 2
    r = UsageRecord
    edge = or_(*(and_(r.created_at >= lo, r.created_at < hi) for lo, hi in raw))
    with store.session() as s:
        edge_rows = int(s.scalar(select(func.count()).select_from(r).where(edge)) or 0)
        s.execute(r.__table__.delete().where(~edge))  # every raw row outside the edges: gone
        s.commit()
    assert 0 < edge_rows < 3000 * 2 / 30 * 1.5  # about 2 of 30 hours' rows, not the 3000
    assert count(store, UsageRecord) == edge_rows
    assert [query_usage(store, group_by=g, **q) for g in GROUPS] == before


def test_two_writers_upsert_the_same_hours_concurrently(db_target: DbTarget) -> None:
    """Two writers (own engines, as two replicas would have) add to the same hourly rows at once."""
    stores = [db_target.store(), db_target.store()]
    stores[0].upgrade()
    batches = [make_rows(200, seed=s, spread=timedelta(hours=3)) for s in range(12)]
    errors: list[BaseException] = []

    def run(store: Store, mine: list[list[UsageRow]]) -> None:
        writer = UsageWriter(store)
        try:
            for batch in mine:
                writer._write(batch)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(st, batches[i::2])) for i, st in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = [r for b in batches for r in b]
    for g in GROUPS:
        assert query_usage(stores[0], tenant=None, start=None, end=None, group_by=g) == expected(
            rows, g, None, None, None
        )
    with stores[0].session() as s:
        assert s.scalar(select(func.sum(UsageHourly.requests))) == 2400
    for st in stores:
        st.dispose()


def test_retention_deletes_raw_rows_and_keeps_totals_exact(store: Store) -> None:
    fill(store)
    before = answers(store)
    cutoff = retention_cutoff(3, NOW)
    assert cutoff == datetime(2026, 11, 30)
    with store.session() as s:
        old = int(s.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.created_at < cutoff)) or 0)
    hourly = count(store, UsageHourly)
    assert rollup_usage(store, cutoff, batch=200) == old > 0  # several batches
    assert count(store, UsageRecord) == 1500 - old and count(store, UsageHourly) == hourly
    assert answers(store) == before
    assert rollup_usage(store, cutoff) == 0  # idempotent
    assert rollup_usage(store, retention_cutoff(0, NOW + timedelta(days=1))) == 1500 - old  # everything
    assert count(store, UsageRecord) == 0
    assert answers(store) == before


def test_governance_applies_its_retention(store: Store) -> None:
    from aiaas.service.governance.service import DbGovernance

    fill(store, 200)
    before = answers(store)
    assert DbGovernance(store).rollup_usage(NOW) == 0  # retention 0: raw rows are kept forever
    moved = DbGovernance(store, usage_retention_days=5).rollup_usage(NOW)
    assert moved > 0 and count(store, UsageRecord) == 200 - moved
    assert answers(store) == before


def test_migration_0005_fills_hourly_totals_from_existing_rows_and_goes_down(db_target: DbTarget) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from aiaas.store.db import MIGRATIONS_DIR, current_revision

    store = db_target.store()
    store.upgrade("0004")
    rows = make_rows(300)
    with store.session() as s:  # raw rows stored before 0005 (ORM-written, as any earlier writer's)
        s.add_all(
            UsageRecord(
                tenant_id=r.tenant_id,
                key_id=r.key_id,
                model=r.model,
                version=r.version,
                endpoint=r.endpoint,
                status=r.status,
                latency_ms=r.latency_ms,
                units_in=r.units_in,
                units_out=r.units_out,
                compute_s=r.compute_s,
                cost=r.cost,
                created_at=r.created_at,
            )
            for r in rows
        )
        s.commit()
    store.upgrade("0005")
    assert current_revision(store.engine) == "0005"
    with store.session() as s:  # drop the raw rows: every answer below must come from the backfilled hours
        s.execute(UsageRecord.__table__.delete())
        s.commit()
    for q in QUERIES:
        for g in GROUPS:
            assert query_usage(store, group_by=g, **q) == expected(rows, g, **q), (q, g)
    UsageWriter(store)._write(rows[:10])  # new rows add to the backfilled hours (same stored hour form)
    assert query_usage(store, tenant=None, start=None, end=None, group_by="model") == expected(
        rows + rows[:10], "model", None, None, None
    )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        if db_target.schema:
            conn.exec_driver_sql(f'SET search_path TO "{db_target.schema}"')
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert "usage_hourly" not in inspect(store.engine).get_table_names()
    store.dispose()
