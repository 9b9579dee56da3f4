"""Key sprays: unknown key ids are remembered in a bounded negative cache, and a client address that sends
too many invalid keys gets 429 with Retry-After before any lookup, so a spray of random keys costs about
the database lookups of one wrong key -- counted here as SQL statements on ``api_keys``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from security.kit import X, make_world
from sqlalchemy import event

from aiaas.errors import RateLimited
from aiaas.service.governance.authguard import FailedAuthLimiter

N = 20  # failed authentications per minute per address in these tests


def random_key() -> str:
    return f"aiaas-{secrets.token_hex(6)}-{secrets.token_urlsafe(32)}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    with make_world(tmp_path / "home", tmp_path / "src", None, auth_failures_per_minute=N) as w:
        yield w


def key_queries(world) -> list[int]:  # type: ignore[no-untyped-def]
    """A live count of the SQL statements that read ``api_keys``."""
    count = [0]

    def before(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "api_keys" in statement:
            count[0] += 1

    event.listen(world.services.store.engine, "before_cursor_execute", before)
    return count


def spray(world, keys: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    """Send each key from the test client's one address."""
    statuses = []
    for key in keys:
        r = world.client.post("/v2/models/pub/infer", json=X, headers={"Authorization": f"Bearer {key}"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert "too many failed authentications" in r.json()["error"]
    return statuses


def test_spray_costs_what_one_wrong_key_costs(world) -> None:  # type: ignore[no-untyped-def]
    user = world.key("acme")
    count = key_queries(world)
    one = random_key()
    statuses = spray(world, [one] * 200)
    same_key = count[0]
    assert statuses[:N] == [401] * N and set(statuses[N:]) == {429}
    assert same_key == 1  # looked up once, then the negative cache answers

    world.services.governance.auth_guard = FailedAuthLimiter(N)  # a fresh address table for the second run
    count[0] = 0
    statuses = spray(world, [random_key() for _ in range(200)])
    assert statuses[:N] == [401] * N and set(statuses[N:]) == {429}
    assert count[0] <= N  # each of the first N ids once; the other 180 cost no lookup at all
    # the refused address locked nobody else out
    principal = world.client.portal.call(world.governance.authenticate, f"Bearer {user.secret}", "10.9.9.9")
    assert principal.key_id == user.id


def test_negative_cache_is_bounded_and_expires(tmp_path: Path) -> None:
    with make_world(
        tmp_path / "home",
        tmp_path / "src",
        None,
        negative_key_cache_size=16,
        negative_key_cache_ttl_s=0.0,
        auth_failures_per_minute=0,
    ) as w:
        gov = w.governance
        count = key_queries(w)
        spray(w, [random_key() for _ in range(100)])
        assert len(gov._unknown) <= 16
        before = count[0]
        key = random_key()
        spray(w, [key, key])
        assert count[0] - before == 2  # a TTL of 0 remembers nothing: both were looked up


def test_failed_auth_limiter_refills_and_forgets_old_addresses() -> None:
    now = [0.0]
    guard = FailedAuthLimiter(6, max_clients=3, clock=lambda: now[0])
    for _ in range(6):
        guard.check("a")
        guard.failed("a")
    with pytest.raises(RateLimited) as info:
        guard.check("a")
    assert info.value.headers["Retry-After"] == "10"  # one failure's worth of refill: 60 s / 6
    guard.check("b")  # other addresses are unaffected
    now[0] = 10.0
    guard.check("a")  # refilled by one
    for address in "bcde":
        guard.failed(address)
    assert len(guard) == 3  # bounded: the least recently failing address was forgotten
