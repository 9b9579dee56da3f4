"""Micro-benchmark: per-request cost of authenticate + admit + finish in-process.

Compares ``DbGovernance`` (SQLite store, a key with rate, unit and concurrency limits, a tenant budget, a
priced model; the background flushers running) against the no-op ``AdminKeyGovernance``. Target: the
overhead at p50 is at most 0.3 ms.

    .venv/bin/python bench/governance_overhead.py [--iterations 10000] [--budget-mode memory|db]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import AdminKeyGovernance, Governance, ModelRef, Outcome
from aiaas.service.governance.service import DbGovernance
from aiaas.store.db import Store

TARGET_MS = 0.3
MODEL = ModelRef("resnet", version="1", pricing={"per_request": 0.0001, "per_1k_units": 0.01})


async def measure(gov: Governance, header: str, iterations: int) -> list[float]:
    outcome = Outcome(200, units_in=3, units_out=1, compute_s=0.002)
    for _ in range(500):  # warm caches and the estimator
        await gov.finish(await gov.admit(await gov.authenticate(header), MODEL, "infer"), outcome)
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        t0 = clock()
        principal = await gov.authenticate(header)
        admission = await gov.admit(principal, MODEL, "infer")
        await gov.finish(admission, outcome)
        samples.append((clock() - t0) / 1e6)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(iterations: int, budget_mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.upgrade()
        gov = DbGovernance(store, budget_mode=budget_mode)  # type: ignore[arg-type]
        gov.bootstrap_admin("bench-admin-secret")
        admin = GovernanceAdmin(store, gov)
        root = await gov.authenticate("Bearer bench-admin-secret")
        admin.create_tenant(root, "acme")
        key = admin.create_key(root, "acme", "user")
        admin.set_limits(root, "key", key["id"], rpm=10**8, upm=10**12, concurrency=1000)
        admin.set_limits(root, "tenant", "acme", rpm=10**8)
        admin.set_budget(root, "tenant", "acme", amount=10**9, period="month")
        await gov.start()
        governed = await measure(gov, f"Bearer {key['key']}", iterations)
        await gov.close()
        written = gov.usage.written
        store.dispose()
    noop = await measure(AdminKeyGovernance("bench-admin-secret"), "Bearer bench-admin-secret", iterations)
    rows = [("AdminKeyGovernance (no-op)", noop), (f"DbGovernance (budget_mode={budget_mode})", governed)]
    print(f"{'':34} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    for name, samples in rows:
        print(f"{name:34} {pct(samples, 0.5):9.4f} {pct(samples, 0.99):9.4f} {statistics.fmean(samples):9.4f}")
    overhead50 = pct(governed, 0.5) - pct(noop, 0.5)
    overhead99 = pct(governed, 0.99) - pct(noop, 0.99)
    verdict = "OK" if overhead50 <= TARGET_MS else "OVER TARGET"
    print(f"overhead p50 {overhead50:.4f} ms, p99 {overhead99:.4f} ms; target p50 <= {TARGET_MS} ms: {verdict}")
    print(f"usage rows written by the background flusher: {written} (of {iterations + 500})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--budget-mode", choices=["memory", "db"], default="memory")
    args = parser.parse_args()
    asyncio.run(main(args.iterations, args.budget_mode))
