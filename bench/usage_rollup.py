"""/v1/usage over many raw usage rows: the raw-row scan it used to be against the hourly totals it reads now.

Method: a fresh SQLite database (or a fresh schema of ``--postgres URL``) gets ``--rows`` usage rows through
the server's own writer (raw insert + hourly upsert in one transaction per 20,000-row batch; both parts are
timed), spread over ``--days`` days in time order as a server writes them, 3 tenants x 5 keys x 4 models
(a real flush holds about a second of traffic: fewer hours per batch, so a smaller upsert share). Then the
usage query behind ``GET /v1/usage`` (one tenant, grouped by model, key and day; best of 3) is timed two ways
on the same data:

* ``raw scan``: one aggregate over every raw row in the range -- the query before the hourly totals;
* ``hourly``: ``query_usage`` -- whole hours from ``usage_hourly``, the partial edge hours from raw rows.

for three ranges: /v1/usage's default (the last 30 days, so the start is not on an hour), all time, and the
last 24 hours up to now (both edges partial: the raw rows of two hours are read). The
totals must be identical (exit 1 if not). Last, retention deletes raw rows older than ``--retention`` days and
the hourly answer is checked again.

    nice .venv/bin/python bench/usage_rollup.py [--rows 200000] [--days 2] [--retention 1] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from governance_http import postgres_schema

from aiaas.service.governance.rollup import retention_cutoff, rollup_usage
from aiaas.service.governance.usage import UsageRow, UsageWriter, answer, query_usage, raw_query
from aiaas.store.db import Store
from aiaas.store.models import utcnow

GROUPS = ("model", "key", "day")
Answer = list[list[dict[str, Any]]]


def fill(store: Store, rows: int, days: int, now: datetime) -> tuple[float, float]:
    """Writes the rows; returns the seconds spent on raw inserts and on hourly upserts."""
    rng = random.Random(1)
    writer = UsageWriter(store)
    raw_s = hourly_s = 0.0
    ages = sorted((rng.randrange(days * 86_400_000) for _ in range(rows)), reverse=True)  # in time order
    for start in range(0, rows, 20_000):
        batch = [
            UsageRow(
                f"t{rng.randrange(3)}",
                f"k{rng.randrange(5)}",
                f"m{rng.randrange(4)}",
                "1",
                "infer",
                200,
                rng.randint(1, 64) / 8,
                rng.randint(0, 16),
                1.0,
                rng.randint(0, 32) / 1024,
                rng.randint(0, 8) / 64,
                now - timedelta(milliseconds=age),
            )
            for age in ages[start : start + 20_000]
        ]
        with store.engine.begin() as conn:  # what UsageWriter._write does, timed part by part
            t0 = time.perf_counter()
            writer.insert_rows(conn, batch)
            t1 = time.perf_counter()
            writer.add_hourly(conn, batch)
            t2 = time.perf_counter()
        raw_s, hourly_s = raw_s + t1 - t0, hourly_s + t2 - t1
    return raw_s, hourly_s


def timed(query: Callable[[str], list[dict[str, Any]]]) -> tuple[float, Answer]:
    best, result = float("inf"), []
    for _ in range(3):
        t0 = time.perf_counter()
        result = [query(g) for g in GROUPS]
        best = min(best, time.perf_counter() - t0)
    return best, result


def compare(store: Store, start: datetime | None, end: datetime | None) -> tuple[float, float, bool]:
    scan_s, scan = timed(lambda g: answer(store, [raw_query(store, "t1", [(start, end)], g, None)], g))
    hourly_s, hourly = timed(lambda g: query_usage(store, tenant="t1", start=start, end=end, group_by=g))
    return scan_s, hourly_s, scan == hourly


def main(rows: int, days: int, retention: float, postgres: str | None) -> int:
    now = utcnow()
    with tempfile.TemporaryDirectory(prefix="aiaas-usage-") as tmp, postgres_schema(postgres) as url:
        store = Store(url or f"sqlite:///{tmp}/usage.db")
        store.upgrade()
        raw_s, hourly_s = fill(store, rows, days, now)
        ranges = {
            "default (last 30 days)": (now - timedelta(days=30), None),
            "all time": (None, None),
            "last 24 h, end = now": (now - timedelta(days=1), now),
        }
        results = {name: compare(store, *edges) for name, edges in ranges.items()}
        _, before = timed(lambda g: query_usage(store, tenant="t1", start=None, end=None, group_by=g))
        t0 = time.perf_counter()
        deleted = rollup_usage(store, retention_cutoff(retention))
        retention_s = time.perf_counter() - t0
        after_s, after = timed(lambda g: query_usage(store, tenant="t1", start=None, end=None, group_by=g))
        store.dispose()
    backend = "PostgreSQL" if postgres else "SQLite"
    print(f"{rows} raw usage rows over {days} days, {backend}; query: tenant t1 by model, key and day (best of 3)")
    print(f"write: raw inserts {raw_s:.2f} s, hourly upserts {hourly_s:.2f} s (+{hourly_s / raw_s:.0%} per batch)")
    ok = True
    for name, (scan_s, hourly_s, same) in results.items():
        print(
            f"{name:24s} raw scan {scan_s * 1000:8.1f} ms   hourly {hourly_s * 1000:7.1f} ms   "
            f"({scan_s / hourly_s:.0f}x faster)   totals identical: {'PASS' if same else 'MISS'}"
        )
        ok = ok and same
    same = before == after
    print(
        f"retention {retention:g} days: {deleted} raw rows deleted in {retention_s:.1f} s; "
        f"hourly query {after_s * 1000:.1f} ms, totals identical: {'PASS' if same else 'MISS'}"
    )
    return 0 if ok and same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--retention", type=float, default=1.0)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()
    raise SystemExit(main(args.rows, args.days, args.retention, args.postgres))
