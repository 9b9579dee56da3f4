from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import select, update

from aiaas.errors import PaymentRequired
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import ModelRef, Outcome, Principal
from aiaas.service.governance.budgets import next_reset, period_start
from aiaas.service.governance.service import DbGovernance
from aiaas.store.db import Store
from aiaas.store.models import Budget

from .conftest import ADMIN_SECRET
from .helpers import make_key

pytestmark = pytest.mark.anyio
COST = 0.07
PRICED = ModelRef("priced", pricing={"per_request": COST})


@pytest.fixture(params=["memory", "db"])
async def budgeted(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[DbGovernance]:
    gov = DbGovernance(store, budget_mode=request.param)
    gov.bootstrap_admin(ADMIN_SECRET)
    await gov.start()
    yield gov
    await gov.close()


async def _tenant_with_user(gov: DbGovernance) -> tuple[GovernanceAdmin, Principal, Principal]:
    admin = GovernanceAdmin(gov.store, gov)
    root = await gov.authenticate(f"Bearer {ADMIN_SECRET}")
    admin.create_tenant(root, "acme")
    user, _ = await make_key(gov, admin, root, "acme")
    return admin, root, user


def _db_spent(store: Store, scope: str, subject: str) -> float:
    with store.session() as session:
        return session.scalars(select(Budget.spent).where(Budget.scope == scope, Budget.subject_id == subject)).one()


async def test_402_names_the_budget_its_limit_and_reset(budgeted: DbGovernance) -> None:
    admin, root, user = await _tenant_with_user(budgeted)
    admin.set_budget(root, "tenant", "acme", amount=0.1, period="month")
    await budgeted.finish(await budgeted.admit(user, PRICED, "infer"), Outcome(200))
    with pytest.raises(PaymentRequired) as err:
        await budgeted.admit(user, PRICED, "infer")
    message = err.value.message
    assert err.value.status_code == 402 and err.value.param == "tenant"
    assert "tenant budget of tenant 'acme'" in message and "0.1000" in message and "per month" in message
    reset = next_reset("month", period_start("month", datetime.now()))
    assert reset is not None and f"resets at {reset.isoformat()}Z" in message
    # A key budget is named as such and checked too.
    admin.set_budget(root, "tenant", "acme", amount=None)
    admin.set_budget(root, "key", user.key_id, amount=0.05, period="total")
    with pytest.raises(PaymentRequired, match=f"key budget of key '{user.key_id}'.*does not reset"):
        await budgeted.admit(user, PRICED, "infer")
    await budgeted.finish(await budgeted.admit(user, ModelRef("free"), "infer"), Outcome(200))  # nothing to pay


async def test_racing_requests_at_the_budget_edge(budgeted: DbGovernance) -> None:
    admin, root, user = await _tenant_with_user(budgeted)
    admin.set_budget(root, "tenant", "acme", amount=1.0, period="day")

    async def attempt() -> object:
        try:
            return await budgeted.admit(user, PRICED, "infer")
        except PaymentRequired:
            return None

    admissions = [a for a in await asyncio.gather(*[attempt() for _ in range(50)]) if a is not None]
    assert len(admissions) == 14  # floor(1.0 / 0.07): no overspend, no lost reservation
    await asyncio.gather(*[budgeted.finish(a, Outcome(200)) for a in admissions])  # type: ignore[arg-type]
    await budgeted.ledger.flush()
    spent = _db_spent(budgeted.store, "tenant", "acme")
    assert spent == pytest.approx(14 * COST) and spent <= 1.0 + COST
    assert admin.get_budget(root, "tenant", "acme")["spent"] == pytest.approx(14 * COST)


async def test_racing_threads_in_one_process(store: Store) -> None:
    gov = DbGovernance(store, budget_mode="memory")
    gov.bootstrap_admin(ADMIN_SECRET)
    admin, root, user = await _tenant_with_user(gov)
    admin.set_budget(root, "key", user.key_id, amount=1.0, period="total")

    def attempt(_: int) -> bool:
        try:
            asyncio.run(gov.admit(user, PRICED, "infer"))
            return True
        except PaymentRequired:
            return False

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(attempt, range(50)))
    assert admitted == 14
    await gov.close()


async def test_two_replicas_race_on_postgres_or_sqlite_rows(store: Store) -> None:
    """Two governance instances (as two server processes would) reserve from the same database row."""
    replicas = [DbGovernance(store, budget_mode="db") for _ in range(2)]
    replicas[0].bootstrap_admin(ADMIN_SECRET)
    admin, root, user = await _tenant_with_user(replicas[0])
    admin.set_budget(root, "tenant", "acme", amount=1.0, period="month")
    replicas[1].refresh()

    async def attempt(i: int) -> bool:
        try:
            await replicas[i % 2].admit(user, PRICED, "infer")
            return True
        except PaymentRequired:
            return False

    results = await asyncio.gather(*[attempt(i) for i in range(50)])
    assert sum(results) == 14
    assert _db_spent(store, "tenant", "acme") <= 1.0 + COST
    for gov in replicas:
        await gov.close()


async def test_finish_settles_the_real_cost(budgeted: DbGovernance) -> None:
    admin, root, user = await _tenant_with_user(budgeted)
    admin.set_budget(root, "tenant", "acme", amount=100.0, period="month")
    model = ModelRef("metered", pricing={"per_request": 0.01, "per_1k_units": 2.0, "per_compute_second": 0.5})
    admission = await budgeted.admit(user, model, "infer")
    assert admission.grant.estimate == pytest.approx(0.01)
    await budgeted.finish(admission, Outcome(200, units_in=300, units_out=200, compute_s=2.0))
    expected = 0.01 + 500 / 1000 * 2.0 + 2.0 * 0.5
    await budgeted.ledger.flush()
    assert _db_spent(budgeted.store, "tenant", "acme") == pytest.approx(expected)
    # The next reservation uses what requests to this model really cost.
    assert budgeted.estimate(model) == pytest.approx(expected)
    failed = await budgeted.admit(user, model, "infer")
    await budgeted.finish(failed, Outcome(500, units_in=10))
    await budgeted.ledger.flush()
    assert _db_spent(budgeted.store, "tenant", "acme") == pytest.approx(expected)  # failures are free


async def test_elapsed_period_starts_from_zero(budgeted: DbGovernance) -> None:
    admin, root, user = await _tenant_with_user(budgeted)
    admin.set_budget(root, "tenant", "acme", amount=0.1, period="day")
    await budgeted.finish(await budgeted.admit(user, PRICED, "infer"), Outcome(200))
    with pytest.raises(PaymentRequired):
        await budgeted.admit(user, PRICED, "infer")
    yesterday = period_start("day", datetime(2020, 5, 17, 13, 0))
    with budgeted.store.session() as session:
        session.execute(update(Budget).values(period_start=yesterday))
    budget_id = budgeted._policy.budgets["tenant:acme"]
    state = budgeted.ledger.get(budget_id)
    assert state is not None
    state.start = yesterday  # the in-memory ledger is the authority in memory mode
    await budgeted.admit(user, PRICED, "infer")
    await budgeted.ledger.flush()
    with budgeted.store.session() as session:
        row = session.scalars(select(Budget)).one()
    assert row.spent == pytest.approx(COST) and row.period_start > yesterday
    assert re.match(r"\d{4}-\d\d-\d\dT00:00:00Z", admin.get_budget(root, "tenant", "acme")["resets_at"])
