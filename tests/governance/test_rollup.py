"""Usage retention: raw rows past retention become daily totals, and /v1/usage totals stay exact (SQLite and
PostgreSQL). The values are binary fractions, so any summation order gives the same floats: exact equality."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from aiaas.service.governance.rollup import RollupConflict, _rollup_batch, retention_cutoff, rollup_usage
from aiaas.service.governance.usage import UsageRow, UsageWriter, query_usage
from aiaas.store.db import Store
from aiaas.store.models import UsageDaily, UsageRecord

NOW = datetime(2026, 12, 3, 15, 30)


def fill(store: Store, n: int = 1500) -> None:
    rng = random.Random(7)
    rows = [
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
            created_at=NOW - timedelta(days=rng.randint(0, 9), seconds=rng.randint(0, 86_399)),
        )
        for _ in range(n)
    ]
    UsageWriter(store)._write(rows)


QUERIES = [
    {"tenant": None, "start": None, "end": None},
    {"tenant": "acme", "start": None, "end": None},
    {"tenant": "globex", "start": datetime(2026, 11, 26), "end": datetime(2026, 12, 2)},  # whole days
    {"tenant": "acme", "start": datetime(2026, 11, 29), "end": None, "key": "k2"},
]


def answers(store: Store) -> list[list[dict]]:  # type: ignore[type-arg]
    return [query_usage(store, group_by=g, **q) for q in QUERIES for g in ("model", "key", "day")]


def count(store: Store, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_rollup_keeps_totals_exact(store: Store) -> None:
    fill(store)
    before = answers(store)
    cutoff = retention_cutoff(3, NOW)
    assert cutoff == datetime(2026, 11, 30)
    with store.session() as s:
        old = int(
            s.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.created_at < cutoff))
            or 0
        )
    assert rollup_usage(store, cutoff, batch=200) == old > 0  # several batches, including a partial day group
    assert count(store, UsageRecord) == 1500 - old
    assert 0 < count(store, UsageDaily) <= 7 * 2 * 3 * 2  # days x tenants x keys x models
    assert answers(store) == before
    assert rollup_usage(store, cutoff) == 0  # idempotent
    assert rollup_usage(store, retention_cutoff(0, NOW + timedelta(days=1))) == 1500 - old  # everything
    assert count(store, UsageRecord) == 0
    assert answers(store) == before


def test_a_batch_rolled_elsewhere_is_undone(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """If another process deletes some of the same raw rows first, this batch adds nothing."""
    fill(store, 50)
    before = answers(store)
    from aiaas.service.governance import rollup

    real_delete = rollup.delete

    def racing_delete(table):  # type: ignore[no-untyped-def]
        with store.engine.begin() as conn:  # "another replica" takes one of the rows first
            first = conn.execute(select(func.min(UsageRecord.id))).scalar_one()
            conn.execute(real_delete(UsageRecord).where(UsageRecord.id == first))
        return real_delete(table)

    monkeypatch.setattr(rollup, "delete", racing_delete)
    with pytest.raises(RollupConflict):
        _rollup_batch(store, NOW + timedelta(days=1), 1000)
    monkeypatch.undo()
    assert count(store, UsageDaily) == 0 and count(store, UsageRecord) == 49
    assert before  # the rows the racing delete took are gone; the rest are all still raw


def test_governance_rolls_up_past_its_retention(store: Store) -> None:
    from aiaas.service.governance.service import DbGovernance

    fill(store, 200)
    before = answers(store)
    assert DbGovernance(store).rollup_usage(NOW) == 0  # retention 0: raw rows are kept forever
    moved = DbGovernance(store, usage_retention_days=5).rollup_usage(NOW)
    assert moved > 0 and count(store, UsageRecord) == 200 - moved
    assert answers(store) == before


def test_migration_0005_up_and_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    from aiaas.store.db import current_revision

    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.upgrade("0004")
    store.upgrade("0005")
    assert (
        current_revision(store.engine) == "0005" and "usage_daily" in inspect(store.engine).get_table_names()
    )
    from alembic import command
    from alembic.config import Config

    from aiaas.store.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert "usage_daily" not in inspect(store.engine).get_table_names()
    store.dispose()
