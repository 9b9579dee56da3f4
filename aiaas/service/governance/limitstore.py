"""What happens to shared rate limits when their store (Redis) is down or hangs.

``ResilientLimiter`` wraps the shared limiter:

* every call is bounded (twice ``timeout_s``, the client's socket timeout), so a Redis that accepts
  connections and never answers costs a request at most that long, never the client's default 5 s;
* after a failure the store counts as down for ``retry_s``: requests meanwhile do not touch it (no pile-up of
  timeouts), then one request probes it again;
* while it is down, ``mode="closed"`` (the default) refuses requests that need a shared limit with
  503 ``limit_store_unavailable`` and ``Retry-After``; ``mode="open"`` counts them in this process instead
  (every replica then allows the full limit on its own) -- both logged at ERROR when the outage begins and
  every ``LOG_EVERY_S`` while it lasts. Requests of keys without limits never reach the limiter.

A rate-limit refusal (429) is an answer of a healthy store, never a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from aiaas.errors import RateLimited, ServiceUnavailable
from aiaas.service.governance.limits import Limiter, MemoryLimiter, RateState, Scopes

log = logging.getLogger("aiaas.governance.limits")
LOG_EVERY_S = 30.0
MAX_PENDING = 100_000
FailureMode = Literal["closed", "open"]


class LimitStoreUnavailable(ServiceUnavailable):
    pass


def _store_errors() -> tuple[type[BaseException], ...]:
    """What a store that is down or hangs raises (redis is an optional import until Redis is configured)."""
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)
    try:
        from redis.exceptions import RedisError

        errors += (RedisError,)
    except ImportError:  # pragma: no cover - redis is a dependency, but the wrapper does not need it
        pass
    return errors


class ResilientLimiter(Limiter):
    def __init__(
        self,
        shared: Limiter,
        *,
        mode: FailureMode = "closed",
        timeout_s: float = 1.0,
        retry_s: float = 1.0,
        name: str = "redis",
    ) -> None:
        if mode not in ("closed", "open"):
            raise ValueError(f"limit store failure mode must be 'closed' or 'open', not {mode!r}")
        self.shared = shared
        self.mode = mode
        self.timeout_s = 2 * timeout_s  # the client's socket timeouts (timeout_s) normally fire first
        self.retry_s = retry_s
        self.name = name
        self.fallback = MemoryLimiter()
        self._errors = _store_errors()
        self._fallback_leases: set[str] = set()
        # releases that could not reach the store: replayed once it is back, so the concurrency slots they hold
        # free at once rather than after their lease (bounded; beyond it a slot waits for its lease to expire)
        self._pending: list[tuple[Scopes, str, float]] = []
        self._down_until = 0.0  # monotonic time before which the store is not tried again
        self._probing = False
        self._logged_at = 0.0
        self.last_error: str | None = None  # None while the store works
        self.failures = 0

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def _usable(self) -> bool:
        """Whether to try the store now: it is up, or down long enough for this call to probe it (one at a time)."""
        if self.last_error is None:
            return True
        if self._probing or time.monotonic() < self._down_until:
            return False
        self._probing = True
        return True

    def _up(self) -> None:
        self._probing = False
        if self.last_error is not None:
            log.warning(
                "the shared rate-limit store (%s) is reachable again; shared limits are enforced again",
                self.name,
            )
            self.last_error = None

    def _down(self, exc: BaseException) -> None:
        self._probing = False
        self.failures += 1
        self._down_until = time.monotonic() + self.retry_s
        first = self.last_error is None
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = time.monotonic()
        if first or now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            if self.mode == "closed":
                what = "FAILING CLOSED: requests of keys with shared limits get 503 until it is back"
            else:
                what = "FAILING OPEN: limits are now counted per process, so every replica allows the full limit"
            log.error("the shared rate-limit store (%s) is unavailable (%s); %s", self.name, self.last_error, what)

    def _unavailable(self) -> LimitStoreUnavailable:
        return LimitStoreUnavailable(
            f"the rate-limit store ({self.name}) is unavailable, so requests of keys with shared limits cannot be "
            "admitted; retry later",
            code="limit_store_unavailable",
            retry_after=max(1.0, self.retry_s),
        )

    async def acquire(self, scopes: Scopes, lease: str) -> RateState:
        if self._usable():
            try:
                async with asyncio.timeout(self.timeout_s):
                    if self._pending:  # first free the slots released while the store was away
                        await self._replay()
                    state = await self.shared.acquire(scopes, lease)
            except self._errors as exc:
                self._down(exc)
            except RateLimited:  # a refusal is an answer: the store works
                self._up()
                raise
            except BaseException:  # cancelled (the client went away): no verdict on the store
                self._probing = False
                raise
            else:
                self._up()
                return state
        if self.mode == "open":
            state = await self.fallback.acquire(scopes, lease)
            self._fallback_leases.add(lease)
            return state
        raise self._unavailable()

    async def release(self, scopes: Scopes, lease: str, units: float) -> None:
        if lease in self._fallback_leases:
            self._fallback_leases.discard(lease)
            await self.fallback.release(scopes, lease, units)
            return
        if self.last_error is not None:
            self._defer(scopes, lease, units)
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.shared.release(scopes, lease, units)
        except self._errors as exc:
            self._down(exc)
            self._defer(scopes, lease, units)

    def _defer(self, scopes: Scopes, lease: str, units: float) -> None:
        if len(self._pending) < MAX_PENDING:
            self._pending.append((scopes, lease, units))

    async def _replay(self) -> None:
        """Send the remembered releases; on a store error the unsent ones stay remembered and it propagates."""
        pending, self._pending = self._pending, []
        for i, (scopes, lease, units) in enumerate(pending):
            try:
                await self.shared.release(scopes, lease, units)
            except BaseException:
                self._pending[:0] = pending[i:]
                raise

    async def ping(self) -> None:
        """Probe the store (bounded), updating the health this limiter reports; raises when it is down."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.shared.ping()
        except self._errors as exc:
            if self.last_error is None:
                self._down(exc)
            raise
        self._up()

    async def close(self) -> None:
        await self.shared.close()
