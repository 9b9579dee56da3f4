from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import String, func, select

from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import ModelRef, Outcome, Principal
from aiaas.service.governance.service import DbGovernance
from aiaas.service.governance.usage import UsageRow, UsageWriter
from aiaas.store.db import Store
from aiaas.store.models import UsageRecord, utcnow

from .conftest import ADMIN_SECRET
from .helpers import make_key

pytestmark = pytest.mark.anyio


def _count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(UsageRecord)) or 0)


async def test_finish_only_buffers_and_the_flusher_writes_every_second(store: Store) -> None:
    gov = DbGovernance(store)  # default usage_flush_s = 1.0
    gov.bootstrap_admin(ADMIN_SECRET)
    await gov.start()
    admin = GovernanceAdmin(store, gov)
    root = await gov.authenticate(f"Bearer {ADMIN_SECRET}")
    admin.create_tenant(root, "acme")
    user, _ = await make_key(gov, admin, root, "acme")
    await asyncio.sleep(0)  # let the flusher start its first sleep
    for _ in range(20):
        await gov.finish(await gov.admit(user, ModelRef("m"), "infer"), Outcome(200, units_in=1))
    assert _count(store) == 0 and gov.usage.pending == 20  # nothing written on the request path
    deadline = time.monotonic() + 60  # the flusher's next tick, however slow the machine is
    while _count(store) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _count(store) == 20 and gov.usage.pending == 0
    await gov.close()


async def test_close_writes_everything_left(store: Store) -> None:
    writer = UsageWriter(store, interval_s=3600)
    await writer.start()
    for i in range(1000):
        writer.record(UsageRow("t", f"k{i % 3}", "m", "1", "infer", 200, 1.0, 1, 1, 0.0, 0.001))
    assert _count(store) == 0
    await writer.close()
    assert _count(store) == 1000 and writer.written == 1000


async def test_written_rows_read_back_like_orm_rows(store: Store) -> None:
    """The writer bypasses SQLAlchemy's parameter processing: every field, and created_at's stored form (text
    on SQLite), must come back exactly as an ORM-written row's does, so time ranges and ordering mix safely."""
    at = datetime(2026, 11, 28, 21, 0, 0)  # microsecond 0: the case a naive isoformat() would shorten
    writer = UsageWriter(store, interval_s=3600)
    writer.record(UsageRow("t", "k", "m", "2", "v2.infer", 429, 1.5, 3.0, 4.0, 0.25, 0.125, created_at=at))
    await writer.close()
    with store.session() as session:
        session.add(
            UsageRecord(
                tenant_id="t",
                key_id="k",
                model="orm",
                version=None,
                endpoint="v2.infer",
                status=200,
                latency_ms=1.0,
                created_at=at,
            )
        )
        session.commit()
    with store.session() as session:
        got = session.scalars(select(UsageRecord).order_by(UsageRecord.id)).all()
        stored = session.execute(select(func.cast(UsageRecord.created_at, String))).scalars().all()
        in_range = session.scalar(
            select(func.count())
            .select_from(UsageRecord)
            .where(UsageRecord.created_at >= at, UsageRecord.created_at < at + timedelta(seconds=1))
        )
    w = got[0]
    assert (w.tenant_id, w.key_id, w.model, w.version, w.endpoint, w.status) == ("t", "k", "m", "2", "v2.infer", 429)
    assert (w.latency_ms, w.units_in, w.units_out, w.compute_s, w.cost) == (1.5, 3.0, 4.0, 0.25, 0.125)
    assert w.created_at == got[1].created_at == at
    assert stored[0] == stored[1] and in_range == 2


async def test_failed_flush_keeps_the_rows(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = UsageWriter(store, interval_s=3600)
    writer.record(UsageRow("t", "k", "m", None, "infer", 200, 1.0, 0, 0, 0.0, 0.0))
    real = writer._write

    def broken(rows: list[UsageRow]) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(writer, "_write", broken)
    with pytest.raises(RuntimeError):
        await writer.flush()
    assert writer.pending == 1
    monkeypatch.setattr(writer, "_write", real)
    assert await writer.flush() == 1 and _count(store) == 1


async def test_usage_queries_group_by_model_key_and_day(
    store: Store, gov: DbGovernance, admin: GovernanceAdmin, root: Principal
) -> None:
    admin.create_tenant(root, "acme")
    admin.create_tenant(root, "globex")
    now = utcnow()
    rows = [
        UsageRow("acme", "k1", "m1", "1", "infer", 200, 10.0, 100, 10, 0.5, 1.0, now - timedelta(days=1)),
        UsageRow("acme", "k1", "m2", "1", "infer", 200, 20.0, 200, 20, 1.0, 2.0, now - timedelta(days=1)),
        UsageRow("acme", "k2", "m1", "1", "infer", 500, 30.0, 1, 0, 0.1, 0.0, now),
        UsageRow("globex", "k3", "m1", "1", "infer", 200, 1.0, 5, 5, 0.1, 9.0, now),
        UsageRow("acme", "k1", "m1", "1", "infer", 200, 1.0, 5, 5, 0.1, 4.0, now - timedelta(days=60)),
    ]
    for row in rows:
        gov.usage.record(row)
    await gov.usage.flush()
    by_model = admin.usage(root, tenant="acme", group_by="model")["data"]
    assert [(r["model"], r["requests"], r["errors"], r["cost"], r["units_in"]) for r in by_model] == [
        ("m1", 2, 1, 1.0, 101.0),
        ("m2", 1, 0, 2.0, 200.0),
    ]
    by_key = admin.usage(root, tenant="acme", group_by="key")["data"]
    assert [(r["key"], r["requests"], r["cost"]) for r in by_key] == [("k1", 2, 3.0), ("k2", 1, 0.0)]
    by_day = admin.usage(root, tenant="acme", group_by="day")["data"]
    days = [(now - timedelta(days=1)).strftime("%Y-%m-%d"), now.strftime("%Y-%m-%d")]
    assert [(r["day"], r["requests"]) for r in by_day] == [(days[0], 2), (days[1], 1)]
    everything = admin.usage(root, group_by="model", start=(now - timedelta(days=90)).isoformat())["data"]
    assert sum(r["requests"] for r in everything) == 5
    window = admin.usage(
        root,
        tenant="acme",
        start=(now - timedelta(hours=1)).isoformat() + "Z",
        end=(now + timedelta(hours=1)).isoformat(),
    )["data"]
    assert [(r["model"], r["requests"]) for r in window] == [("m1", 1)]


async def test_metered_request_lands_in_usage(gov: DbGovernance, admin: GovernanceAdmin, root: Principal) -> None:
    admin.create_tenant(root, "acme")
    user, _ = await make_key(gov, admin, root, "acme")
    model = ModelRef("m", version="3", pricing={"per_request": 0.5, "per_1k_units": 1.0})
    admission = await gov.admit(user, model, "chat")
    await gov.finish(admission, Outcome(200, units_in=1500, units_out=500, compute_s=0.2))
    await gov.usage.flush()
    with gov.store.session() as session:
        record = session.scalars(select(UsageRecord)).one()
    assert (record.tenant_id, record.key_id, record.model, record.version, record.endpoint) == (
        "acme",
        user.key_id,
        "m",
        "3",
        "chat",
    )
    assert record.cost == pytest.approx(0.5 + 2.0) and record.latency_ms >= 0 and record.status == 200
    assert isinstance(record.created_at, datetime)
    assert admin.usage(user)["data"][0]["cost"] == pytest.approx(2.5)
