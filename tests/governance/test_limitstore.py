"""Redis configured but down (a closed port) or hanging (accepts, never answers): keys with shared limits get
503 ``limit_store_unavailable`` with Retry-After, fast; keys without limits keep working; readiness names
the degraded dependency; fail-open falls back to per-process limits; a recovered store gets the releases."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from security.kit import ROOT, X, make_world

from aiaas.errors import RateLimited
from aiaas.service.governance.limits import LimitSpec, MemoryLimiter, RateState, Scopes
from aiaas.service.governance.limitstore import LimitStoreUnavailable, ResilientLimiter

BOUND_S = 3.0  # far below the redis client's default 5 s socket timeout, far above the configured 0.2 s


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


@contextlib.contextmanager
def hanging_server() -> Iterator[int]:
    """A TCP server that accepts every connection and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(srv.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for c in conns:
            c.close()
        srv.close()


@pytest.fixture(params=["down", "hanging"])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "down":
        yield f"redis://127.0.0.1:{closed_port()}/0"
        return
    with hanging_server() as port:
        yield f"redis://127.0.0.1:{port}/0"


def _world(tmp_path: Path, redis_url: str, mode: str) -> contextlib.AbstractContextManager:  # type: ignore[type-arg]
    return make_world(
        tmp_path / "home",
        tmp_path / "src",
        None,
        redis_url=redis_url,
        redis_timeout_s=0.2,
        redis_retry_s=0.5,
        redis_failure_mode=mode,
    )


def test_fail_closed_refuses_limited_keys_only(tmp_path: Path, redis_url: str) -> None:
    with _world(tmp_path, redis_url, "closed") as w:
        limited = w.key("acme", limits={"requests_per_minute": 100})
        free = w.key("acme")
        for attempt in range(3):  # the first pays the bounded timeout; the next fail fast (breaker open)
            t0 = time.monotonic()
            r = w.client.post("/v2/models/pub/infer", json=X, headers=limited.headers)
            assert time.monotonic() - t0 < BOUND_S, f"attempt {attempt} hung"
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert "rate-limit store (redis) is unavailable" in r.json()["error"]
            r = w.client.post("/v1/chat/completions", json={"model": "pub", "messages": []}, headers=limited.headers)
            assert r.status_code in (400, 503), r.text  # OpenAI route: refused before or at admission, never 500
        assert w.client.post("/v2/models/pub/infer", json=X, headers=free.headers).status_code == 200
        assert w.client.post("/v2/models/pub/infer", json=X, headers=ROOT).status_code == 200
        ready = w.client.get("/v2/health/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["degraded"] == ["redis"] and body["dependencies"] == {
            "database": "ok",
            "redis": "unavailable",
        }
        assert w.usage_rows() == 2  # refused requests are not metered


def test_fail_open_counts_limits_in_process(tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with _world(tmp_path, redis_url, "open") as w:
        limited = w.key("acme", limits={"requests_per_minute": 2})
        statuses = [
            w.client.post("/v2/models/pub/infer", json=X, headers=limited.headers).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
    assert any("FAILING OPEN" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


class FlakyStore(MemoryLimiter):
    """A shared limiter whose store is down while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    async def acquire(self, scopes: Scopes, lease: str) -> RateState:
        self.calls += 1
        if self.down:
            raise ConnectionError("store down")
        return await super().acquire(scopes, lease)

    async def release(self, scopes: Scopes, lease: str, units: float) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("store down")
        await super().release(scopes, lease, units)


def test_breaker_probes_after_retry_and_replays_releases() -> None:
    async def scenario() -> None:
        store = FlakyStore()
        limiter = ResilientLimiter(store, mode="closed", timeout_s=0.5, retry_s=0.2)
        scopes = [("key:k", LimitSpec(concurrency=1))]
        await limiter.acquire(scopes, "a")  # holds the only slot
        store.down = True
        await limiter.release(scopes, "a", 0.0)  # cannot reach the store: remembered
        assert not limiter.healthy and store.inflight("key:k") == 1
        calls = store.calls
        with pytest.raises(LimitStoreUnavailable):
            await limiter.acquire(scopes, "b")
        assert store.calls == calls  # breaker open: the store is not touched
        store.down = False
        await asyncio.sleep(0.25)
        await limiter.acquire(scopes, "c")  # the probe succeeds, then the remembered release is replayed
        assert limiter.healthy and store.inflight("key:k") == 1  # "c" holds the slot "a" gave back
        store.down = True  # down again; when it is back, the probe's answer is a refusal: still "back"
        await limiter.release(scopes, "c", 0.0)
        await asyncio.sleep(0.25)
        store.down = False
        with pytest.raises(RateLimited):
            await limiter.acquire([("key:z", LimitSpec(rpm=0))], "z")
        assert limiter.healthy and store.inflight("key:k") == 0  # and "c" was replayed before it

    asyncio.run(scenario())


def test_failure_mode_setting_is_checked(tmp_path: Path) -> None:
    from aiaas.service.governance.setup import resilience_options
    from aiaas.settings import Settings

    assert resilience_options(Settings(home=tmp_path, redis_failure_mode=" Open "))["redis_failure_mode"] == "open"
    with pytest.raises(ValueError, match="Input should be 'closed' or 'open'"):  # pydantic's ValidationError
        Settings(home=tmp_path, redis_failure_mode="maybe")
