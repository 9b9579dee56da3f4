"""Usage retention: raw usage rows past ``usage_retention_days`` are deleted; their totals stay exact.

Every raw row is counted in ``usage_hourly`` (one row per UTC hour, tenant, key and model) by the usage
writer in the transaction that inserts it (``usage.UsageWriter``), so retention only has to delete the raw
rows created before a UTC midnight, in batches of ids (short transactions, no long lock on a busy table).
Deleting is idempotent: two replicas running it at once delete each row once and change no total.

``/v1/usage`` reads whole hours from ``usage_hourly`` and raw rows only for the partial hours at its range's
edges (``usage.split_range``); past retention those raw rows are gone, so old data is resolved to whole UTC
hours: an hour counts when it lies entirely within the query's [start, end).
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from sqlalchemy import delete, select

from aiaas.store.db import Store
from aiaas.store.models import UsageRecord, utcnow

log = logging.getLogger("aiaas.governance.usage")
BATCH = 5000


def retention_cutoff(retention_days: float, now: datetime | None = None) -> datetime:
    """The UTC midnight before which raw rows are deleted: whole days only, so no day is split."""
    moment = (now or utcnow()) - timedelta(days=retention_days)
    return datetime.combine(moment.date(), time())


def rollup_usage(store: Store, before: datetime, *, batch: int = BATCH) -> int:
    """Delete every raw usage row created before ``before`` (already in ``usage_hourly``); returns how many."""
    deleted = 0
    while True:
        n = _delete_batch(store, before, batch)
        deleted += n
        if n < batch:
            return deleted


def _delete_batch(store: Store, before: datetime, batch: int) -> int:
    r = UsageRecord
    with store.session() as session:
        ids = session.scalars(select(r.id).where(r.created_at < before).order_by(r.id).limit(batch)).all()
        if not ids:
            return 0
        session.execute(delete(r).where(r.id.in_(ids)).execution_options(synchronize_session=False))
    return len(ids)
