"""Usage retention: raw usage rows past ``usage_retention_days`` become exact daily totals.

``rollup_usage`` reads the oldest raw rows (created before a UTC midnight) in batches; for each batch it
deletes exactly those rows by id and adds their sums to ``usage_daily`` -- one row per (day, tenant, key,
model) -- in one transaction. A row is therefore counted once or not at all: if another process (a second
replica's rollup) deleted some of them first, the delete count differs and the batch is rolled back; daily
rows are increased with ``UPDATE ... SET requests = requests + n`` so concurrent batches add up, and a
concurrent insert of the same new daily row fails the batch on the unique constraint (retried next run).

``/v1/usage`` adds the daily totals to the raw rows (``usage.query_usage``). Days that were rolled up are
resolved to whole UTC days: a day counts when its midnight lies within the query's [start, end).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from aiaas.store.db import Store
from aiaas.store.models import UsageDaily, UsageRecord, utcnow

log = logging.getLogger("aiaas.governance.usage")
BATCH = 5000


class RollupConflict(RuntimeError):
    """Another process rolled up some of the same rows first; this batch was undone."""


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    errors: int = 0
    units_in: float = 0.0
    units_out: float = 0.0
    compute_s: float = 0.0
    cost: float = 0.0
    latency_ms: float = 0.0


def retention_cutoff(retention_days: float, now: datetime | None = None) -> datetime:
    """The UTC midnight before which raw rows are rolled up: whole days only, so no day is split."""
    moment = (now or utcnow()) - timedelta(days=retention_days)
    return datetime.combine(moment.date(), time())


def rollup_usage(store: Store, before: datetime, *, batch: int = BATCH) -> int:
    """Roll every raw usage row created before ``before`` into daily totals; returns how many rows moved."""
    moved = 0
    while True:
        n = _rollup_batch(store, before, batch)
        moved += n
        if n < batch:
            return moved


def _rollup_batch(store: Store, before: datetime, batch: int) -> int:
    r = UsageRecord
    with store.session() as session:
        rows = session.execute(
            select(r.id, r.created_at, r.tenant_id, r.key_id, r.model, r.status, r.units_in, r.units_out,
                   r.compute_s, r.cost, r.latency_ms)
            .where(r.created_at < before).order_by(r.id).limit(batch)
        ).all()  # fmt: skip
        if not rows:
            return 0
        groups: dict[tuple[date, str, str, str], _Totals] = {}
        for row in rows:
            t = groups.setdefault((row.created_at.date(), row.tenant_id, row.key_id, row.model), _Totals())
            t.requests += 1
            t.errors += row.status >= 400
            t.units_in += row.units_in or 0.0
            t.units_out += row.units_out or 0.0
            t.compute_s += row.compute_s or 0.0
            t.cost += row.cost or 0.0
            t.latency_ms += row.latency_ms or 0.0
        ids = [row.id for row in rows]
        result = session.execute(delete(r).where(r.id.in_(ids)).execution_options(synchronize_session=False))
        deleted: int = result.rowcount  # type: ignore[attr-defined]
        if deleted != len(ids):
            raise RollupConflict(f"{len(ids) - deleted} of {len(ids)} usage rows were rolled up elsewhere")
        for (day, tenant, key, model), t in groups.items():
            _add(session, day, tenant, key, model, t)
    return len(rows)


def _add(session: Session, day: date, tenant: str, key: str, model: str, t: _Totals) -> None:
    d = UsageDaily
    where = (d.day == day, d.tenant_id == tenant, d.key_id == key, d.model == model)
    result = session.execute(
        update(d).where(*where).values(
            requests=d.requests + t.requests, errors=d.errors + t.errors, units_in=d.units_in + t.units_in,
            units_out=d.units_out + t.units_out, compute_s=d.compute_s + t.compute_s, cost=d.cost + t.cost,
            latency_ms=d.latency_ms + t.latency_ms,
        ).execution_options(synchronize_session=False)
    )  # fmt: skip
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.add(UsageDaily(day=day, tenant_id=tenant, key_id=key, model=model, requests=t.requests,
                               errors=t.errors, units_in=t.units_in, units_out=t.units_out, compute_s=t.compute_s,
                               cost=t.cost, latency_ms=t.latency_ms))  # fmt: skip
        session.flush()
