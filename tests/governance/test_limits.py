from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from aiaas.errors import RateLimited
from aiaas.service.governance.admin import GovernanceAdmin
from aiaas.service.governance.base import Admission, ModelRef, Outcome, Principal
from aiaas.service.governance.limits import Allowance, LimitSpec, MemoryLimiter, RateState
from aiaas.service.governance.service import DbGovernance
from aiaas.service.openai.admission import units_refusal
from aiaas.store.db import Store

from .conftest import ADMIN_SECRET, REDIS_URL
from .helpers import make_key

pytestmark = pytest.mark.anyio
MODEL = ModelRef("m")


@pytest.fixture(params=["memory", "redis"])
async def limited(request: pytest.FixtureRequest, store: Store, redis_prefix: str) -> AsyncIterator[DbGovernance]:
    """A governance whose limiter is in-process or in the real Redis."""
    redis_url = REDIS_URL if request.param == "redis" else None
    gov = DbGovernance(store, redis_url=redis_url, redis_prefix=redis_prefix)
    gov.bootstrap_admin(ADMIN_SECRET)
    await gov.start()
    yield gov
    await gov.close()


async def _setup(gov: DbGovernance, **limits: float) -> tuple[GovernanceAdmin, Principal]:
    admin = GovernanceAdmin(gov.store, gov)
    root = await gov.authenticate(f"Bearer {ADMIN_SECRET}")
    admin.create_tenant(root, "acme")
    principal, _ = await make_key(gov, admin, root, "acme")
    admin.set_limits(root, "key", principal.key_id, **limits)  # type: ignore[arg-type]
    return admin, principal


async def test_requests_per_minute(limited: DbGovernance) -> None:
    _, user = await _setup(limited, rpm=3)
    t0 = time.monotonic()
    remaining = []
    for _ in range(3):
        admission = await limited.admit(user, MODEL, "infer")
        remaining.append(admission.headers["x-ratelimit-remaining-requests"])
        assert admission.headers["x-ratelimit-limit-requests"] == "3"
        await limited.finish(admission, Outcome(200))
    assert remaining == ["2", "1", "0"]
    with pytest.raises(RateLimited) as err:
        await limited.admit(user, MODEL, "infer")
    assert err.value.status_code == 429
    headers = err.value.headers
    assert headers["x-ratelimit-limit-requests"] == "3" and headers["x-ratelimit-remaining-requests"] == "0"
    # one request refills every 60/3 = 20 s after the first; however slow the machine was since then
    assert 20 - (time.monotonic() - t0) - 1 <= int(headers["Retry-After"]) <= 20
    assert "requests-per-minute" in err.value.message


async def test_concurrency(limited: DbGovernance) -> None:
    _, user = await _setup(limited, concurrency=2)
    first = await limited.admit(user, MODEL, "infer")
    second = await limited.admit(user, MODEL, "infer")
    with pytest.raises(RateLimited, match="concurrency") as err:
        await limited.admit(user, MODEL, "infer")
    assert err.value.headers["Retry-After"] == "1"
    await limited.finish(first, Outcome(200))
    third = await limited.admit(user, MODEL, "infer")
    await limited.finish(second, Outcome(500))
    await limited.finish(third, Outcome(200))
    await limited.finish(third, Outcome(200))  # finishing twice frees one slot only once
    await asyncio.gather(*[limited.admit(user, MODEL, "infer") for _ in range(2)])
    with pytest.raises(RateLimited):
        await limited.admit(user, MODEL, "infer")


async def test_units_per_minute(limited: DbGovernance) -> None:
    _, user = await _setup(limited, upm=100)
    admission = await limited.admit(user, MODEL, "infer")
    t0 = time.monotonic()
    assert admission.headers["x-ratelimit-limit-units"] == "100"
    assert admission.headers["x-ratelimit-remaining-units"] == "100"
    await limited.finish(admission, Outcome(200, units_in=40, units_out=20))
    admission = await limited.admit(user, MODEL, "infer")
    refilled = 100 / 60 * (time.monotonic() - t0)  # units refill continuously at 100 per minute
    assert 39 <= int(admission.headers["x-ratelimit-remaining-units"]) <= 40 + refilled
    await limited.finish(admission, Outcome(200, units_in=50))  # post-paid: may go past the limit once
    with pytest.raises(RateLimited, match="units-per-minute") as err:
        await limited.admit(user, MODEL, "infer")
    assert err.value.headers["x-ratelimit-remaining-units"] == "0"
    # 110 units used of 100/min: ~6 s after the first finish to fall below the limit, less what has refilled since
    assert 6 - (time.monotonic() - t0) - 1 <= int(err.value.headers["Retry-After"]) <= 7


async def test_tenant_limit_is_shared_by_its_keys(limited: DbGovernance) -> None:
    admin, first = await _setup(limited)
    root = await limited.authenticate(f"Bearer {ADMIN_SECRET}")
    second, _ = await make_key(limited, admin, root, "acme")
    admin.set_limits(root, "tenant", "acme", rpm=4)
    for principal in (first, second, first, second):
        await limited.finish(await limited.admit(principal, MODEL, "infer"), Outcome(200))
    for principal in (first, second):
        with pytest.raises(RateLimited, match="tenant 'acme'"):
            await limited.admit(principal, MODEL, "infer")


async def test_two_instances_share_one_limit_through_redis(store: Store, redis_prefix: str) -> None:
    instances = [DbGovernance(store, redis_url=REDIS_URL, redis_prefix=redis_prefix) for _ in range(2)]
    instances[0].bootstrap_admin(ADMIN_SECRET)
    for gov in instances:
        await gov.start()
    admin, user = await _setup(instances[0], rpm=10, concurrency=100)
    instances[1].refresh()  # the second "replica" sees the new limit

    async def attempt(gov: DbGovernance) -> bool:
        try:
            await gov.admit(user, MODEL, "infer")
            return True
        except RateLimited:
            return False

    results = await asyncio.gather(*[attempt(instances[i % 2]) for i in range(30)])
    assert sum(results) == 10
    assert sum(results[0::2]) > 0 and sum(results[1::2]) > 0  # both replicas admitted some
    # Concurrency is shared too: 10 admissions hold 10 of the 100 slots in Redis.
    admin.set_limits(await instances[0].authenticate(f"Bearer {ADMIN_SECRET}"), "key", user.key_id, concurrency=10)
    instances[1].refresh()
    with pytest.raises(RateLimited, match="concurrency"):
        await instances[1].admit(user, MODEL, "infer")
    for gov in instances:
        await gov.close()


def test_gcra_refills_continuously() -> None:
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    scopes = [("key:k", LimitSpec(rpm=6))]  # one request per 10 s, bursts of 6
    for _ in range(6):
        limiter.acquire_sync(scopes)
    with pytest.raises(RateLimited) as err:
        limiter.acquire_sync(scopes)
    assert err.value.headers["Retry-After"] == "10"
    now[0] += 9.9
    with pytest.raises(RateLimited):
        limiter.acquire_sync(scopes)
    now[0] += 0.2
    assert limiter.acquire_sync(scopes).headers()["x-ratelimit-remaining-requests"] == "0"
    now[0] += 60
    assert limiter.acquire_sync(scopes).headers()["x-ratelimit-remaining-requests"] == "5"


def test_refused_request_takes_nothing_from_other_buckets() -> None:
    limiter = MemoryLimiter(clock=lambda: 0.0)
    key_only, both = [("key:a", LimitSpec(rpm=5))], [("key:a", LimitSpec(rpm=5)), ("tenant:t", LimitSpec(rpm=1))]
    limiter.acquire_sync(both)
    with pytest.raises(RateLimited, match="tenant"):
        limiter.acquire_sync(both)
    assert limiter.acquire_sync(key_only).headers()["x-ratelimit-remaining-requests"] == "3"


def test_admission_limits_are_typed_and_render_the_headers() -> None:
    """What the binding limits had left is a typed value; the x-ratelimit-* headers are its rendering."""
    limiter = MemoryLimiter(clock=lambda: 1000.0)
    state = limiter.acquire_sync([("key:k", LimitSpec(rpm=10, upm=100.0)), ("tenant:t", LimitSpec(upm=30.5))])
    assert state == RateState(requests=Allowance(limit=10, remaining=9), units=Allowance(limit=30.5, remaining=30))
    assert state.headers() == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-limit-units": "30.5",
        "x-ratelimit-remaining-units": "30",
    }
    assert RateState().headers() == {}


def test_a_generation_refusal_reads_the_typed_admission() -> None:
    admission = Admission(
        principal=Principal("k", "t", "user"),
        model=ModelRef("m"),
        endpoint="openai.chat",
        started=0.0,
        limits=RateState(units=Allowance(limit=60, remaining=5)),
    )
    err = units_refusal(admission, used=12, cap=5, during=True)
    assert err.status_code == 429 and "ran out during generation (12 tokens needed, 5 were left)" in err.message
    assert err.headers == {"x-ratelimit-limit-units": "60", "x-ratelimit-remaining-units": "5", "Retry-After": "7"}
