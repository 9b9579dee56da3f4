"""/v1/usage over many raw usage rows, before and after the daily rollup of rows past retention.

Method: a fresh SQLite database (or a fresh schema of ``--postgres URL``) gets ``--rows`` usage rows (the
server's own writer), spread over ``--days`` days, 3 tenants x 5 keys x 4 models. The usage query behind
``GET /v1/usage`` (one tenant, grouped by model, key and day) is timed (best of 3), the rollup runs with a
retention of ``--retention`` days, and the query is timed again. The totals must be identical (exit 1 if not).

    nice .venv/bin/python bench/usage_rollup.py [--rows 100000] [--days 30] [--retention 1] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from governance_http import postgres_schema

from aiaas.service.governance.rollup import retention_cutoff, rollup_usage
from aiaas.service.governance.usage import UsageRow, UsageWriter, query_usage
from aiaas.store.db import Store
from aiaas.store.models import utcnow


def fill(store: Store, rows: int, days: int) -> None:
    rng = random.Random(1)
    now = utcnow()
    writer = UsageWriter(store)
    for start in range(0, rows, 20_000):
        writer._write([
            UsageRow(f"t{rng.randrange(3)}", f"k{rng.randrange(5)}", f"m{rng.randrange(4)}", "1", "infer", 200,
                     rng.randint(1, 64) / 8, rng.randint(0, 16), 1.0, rng.randint(0, 32) / 1024,
                     rng.randint(0, 8) / 64, now - timedelta(seconds=rng.randrange(days * 86_400)))
            for _ in range(min(20_000, rows - start))
        ])  # fmt: skip


def timed(store: Store) -> tuple[float, list[list[dict[str, object]]]]:
    best, result = float("inf"), []
    for _ in range(3):
        t0 = time.perf_counter()
        result = [
            query_usage(store, tenant="t1", start=None, end=None, group_by=g) for g in ("model", "key", "day")
        ]
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(rows: int, days: int, retention: float, postgres: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="aiaas-usage-") as tmp, postgres_schema(postgres) as url:
        store = Store(url or f"sqlite:///{tmp}/usage.db")
        store.upgrade()
        fill(store, rows, days)
        before_s, before = timed(store)
        t0 = time.perf_counter()
        moved = rollup_usage(store, retention_cutoff(retention))
        rollup_s = time.perf_counter() - t0
        after_s, after = timed(store)
        store.dispose()
    backend = "PostgreSQL" if postgres else "SQLite"
    print(f"usage query (tenant t1: by model, key and day) over {rows} raw rows in {days} days, {backend}")
    print(f"before rollup: {before_s * 1000:8.1f} ms")
    print(f"rollup (retention {retention:g} days): {moved} rows moved in {rollup_s:.1f} s")
    print(f"after rollup:  {after_s * 1000:8.1f} ms  ({before_s / after_s:.1f}x faster)")
    same = before == after
    print(f"totals identical: {'PASS' if same else 'MISS'}")
    return 0 if same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--retention", type=float, default=1.0)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()
    raise SystemExit(main(args.rows, args.days, args.retention, args.postgres))
