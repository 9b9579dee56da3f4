"""Rate limits (requests/minute, units/minute) and concurrency limits, in-process or shared through Redis.

Algorithm: GCRA (the "virtual scheduling" form of a token bucket). Each bucket is one number, its
theoretical arrival time (TAT); a request costs ``60 s / limit`` of it and is allowed while the TAT stays
within one 60 s window of now. So a burst of exactly ``limit`` requests passes from idle and then the bucket
refills continuously -- no fixed-window double bursts, and ``Retry-After`` is exact.

Units are only known when a request finishes, so units/minute is post-paid: ``acquire`` admits while some
units remain in the window and ``release`` charges the units actually used.

Concurrency in-process is a counter; in Redis it is a sorted set of admission ids scored by a lease expiry,
so a crashed process cannot leak slots forever (they expire after ``lease_s``).

The Redis implementation runs the same algorithm in one Lua script per call, atomically over every bucket the
request touches (key and tenant), with Redis's own clock so all processes agree on "now".
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiaas.errors import RateLimited

WINDOW_S = 60.0
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class LimitSpec:
    rpm: int | None = None  # requests per minute
    upm: float | None = None  # units per minute
    concurrency: int | None = None  # requests in flight

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.upm is None and self.concurrency is None


Scopes = Sequence[tuple[str, LimitSpec]]  # ("key:<id>" | "tenant:<id>", spec)


@dataclass(frozen=True, slots=True)
class Allowance:
    """One binding rate limit at admission: its per-minute limit and what it had left (whole units, floored)."""

    limit: float
    remaining: float


@dataclass(frozen=True, slots=True)
class RateState:
    """What a request's binding (least remaining) request and unit buckets had left when it was admitted: the
    typed admission result; ``headers()`` renders it as the x-ratelimit-* response headers."""

    requests: Allowance | None = None  # requests per minute (None: no such limit applies)
    units: Allowance | None = None  # units per minute (None: no such limit applies)

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for word, allowance in (("requests", self.requests), ("units", self.units)):
            if allowance is not None:
                out[f"x-ratelimit-limit-{word}"] = _num(allowance.limit)
                out[f"x-ratelimit-remaining-{word}"] = _num(allowance.remaining)
        return out


def _state(scopes: Scopes, remaining: dict[tuple[str, str], float]) -> RateState:
    """The binding (least remaining) request and unit buckets."""
    found: dict[str, Allowance] = {}
    for kind, attr in (("r", "rpm"), ("u", "upm")):
        best: tuple[float, float] | None = None
        for name, spec in scopes:
            limit = getattr(spec, attr)
            if limit is None or (kind, name) not in remaining:
                continue
            left = max(0.0, remaining[(kind, name)])
            if best is None or left < best[1]:
                best = (limit, left)
        if best is not None:
            found[kind] = Allowance(limit=best[0], remaining=math.floor(best[1] + _EPS))
    return RateState(requests=found.get("r"), units=found.get("u"))


def _headers(
    scopes: Scopes, remaining: dict[tuple[str, str], float], retry_after: float | None = None
) -> dict[str, str]:
    """x-ratelimit-* for the binding (least remaining) request and unit buckets."""
    out = _state(scopes, remaining).headers()
    if retry_after is not None:
        out["Retry-After"] = str(max(1, math.ceil(retry_after - _EPS)))
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _refusal(
    what: str, scope: str, scopes: Scopes, remaining: dict[tuple[str, str], float], retry: float
) -> RateLimited:
    kind, _, ident = scope.partition(":")
    headers = _headers(scopes, remaining, retry)
    return RateLimited(
        f"rate limit exceeded: {what} limit of {kind} '{ident}'; retry after {headers['Retry-After']} s",
        code="rate_limit_exceeded",
        headers=headers,
    )


class Limiter(ABC):
    @abstractmethod
    async def acquire(self, scopes: Scopes, lease: str) -> RateState:
        """Take a request slot in every bucket or none; what the binding buckets have left, or raise
        ``RateLimited``."""

    @abstractmethod
    async def release(self, scopes: Scopes, lease: str, units: float) -> None:
        """Free the concurrency slot and charge the units used."""

    async def ping(self) -> None:
        """Raise when the store behind the limits cannot be reached (in-process limits always can)."""

    async def close(self) -> None:
        return None


class MemoryLimiter(Limiter):
    """Per-process limits under one lock (admit/finish may come from several threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: dict[tuple[str, str], float] = {}
        self._inflight: dict[str, int] = {}

    async def acquire(self, scopes: Scopes, lease: str) -> RateState:
        return self.acquire_sync(scopes)

    def acquire_sync(self, scopes: Scopes) -> RateState:
        with self._lock:
            now = self._clock()
            remaining: dict[tuple[str, str], float] = {}
            new_tats: list[tuple[tuple[str, str], float]] = []
            refusal: tuple[str, str, float] | None = None
            for name, spec in scopes:
                if spec.rpm is not None:
                    interval = WINDOW_S / spec.rpm if spec.rpm > 0 else math.inf
                    new = max(self._tat.get(("r", name), now), now) + interval
                    if new - now > WINDOW_S + _EPS:
                        remaining[("r", name)] = 0
                        retry = new - now - WINDOW_S if spec.rpm > 0 else WINDOW_S
                        refusal = refusal or ("requests-per-minute", name, retry)
                    else:
                        remaining[("r", name)] = (WINDOW_S - (new - now)) / interval
                        new_tats.append((("r", name), new))
                if spec.upm is not None:
                    used = max(self._tat.get(("u", name), now), now) - now
                    if spec.upm <= 0 or used >= WINDOW_S:
                        remaining[("u", name)] = 0
                        refusal = refusal or ("units-per-minute", name, max(used - WINDOW_S, 0.0) + 0.001)
                    else:
                        remaining[("u", name)] = (WINDOW_S - used) * spec.upm / WINDOW_S
                if spec.concurrency is not None and self._inflight.get(name, 0) >= spec.concurrency:
                    refusal = refusal or ("concurrency", name, 1.0)
            if refusal is not None:
                raise _refusal(refusal[0], refusal[1], scopes, remaining, refusal[2])
            for bucket, tat in new_tats:
                self._tat[bucket] = tat
            for name, spec in scopes:
                if spec.concurrency is not None:
                    self._inflight[name] = self._inflight.get(name, 0) + 1
            return _state(scopes, remaining)

    async def release(self, scopes: Scopes, lease: str, units: float) -> None:
        self.release_sync(scopes, units)

    def release_sync(self, scopes: Scopes, units: float) -> None:
        with self._lock:
            now = self._clock()
            for name, spec in scopes:
                if spec.concurrency is not None and self._inflight.get(name, 0) > 0:
                    self._inflight[name] -= 1
                if spec.upm and units > 0:
                    bucket = ("u", name)
                    self._tat[bucket] = max(self._tat.get(bucket, now), now) + units * WINDOW_S / spec.upm

    def inflight(self, name: str) -> int:
        return self._inflight.get(name, 0)


_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local W = tonumber(ARGV[1])
local lease = ARGV[2]
local lease_s = tonumber(ARGV[3])
local out = {}
local denied = 0
local retry = 0
local commits = {}
for i = 1, #KEYS do
  local kind = ARGV[2 + 2 * i]
  local limit = tonumber(ARGV[3 + 2 * i])
  local key = KEYS[i]
  if kind == 'r' then
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    if limit <= 0 then
      out[i] = '0'; if denied == 0 then denied = i; retry = W end
    else
      local interval = W / limit
      local new = tat + interval
      if new - now > W + 1e-6 then
        out[i] = '0'; if denied == 0 then denied = i; retry = new - now - W end
      else
        out[i] = tostring((W - (new - now)) / interval)
        commits[#commits + 1] = {key, new}
      end
    end
  elseif kind == 'u' then
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local used = tat - now
    if limit <= 0 or used >= W then
      out[i] = '0'; if denied == 0 then denied = i; retry = math.max(used - W, 0) + 0.001 end
    else
      out[i] = tostring((W - used) * limit / W)
    end
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local count = redis.call('ZCARD', key)
    if count >= limit then
      out[i] = '0'; if denied == 0 then denied = i; retry = 1 end
    else
      out[i] = tostring(limit - count - 1)
    end
  end
end
if denied == 0 then
  for _, c in ipairs(commits) do
    redis.call('SET', c[1], tostring(c[2]), 'PX', math.ceil(W * 2000))
  end
  for i = 1, #KEYS do
    if ARGV[2 + 2 * i] == 'c' then
      redis.call('ZADD', KEYS[i], now + lease_s, lease)
      redis.call('PEXPIRE', KEYS[i], math.ceil(lease_s * 1000))
    end
  end
end
return {tostring(denied), tostring(retry), unpack(out)}
"""

_RELEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local W = tonumber(ARGV[1])
local lease = ARGV[2]
local units = tonumber(ARGV[3])
for i = 1, #KEYS do
  local kind = ARGV[2 + 2 * i]
  local limit = tonumber(ARGV[3 + 2 * i])
  if kind == 'c' then
    redis.call('ZREM', KEYS[i], lease)
  elseif units > 0 and limit > 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local new = tat + units * W / limit
    redis.call('SET', KEYS[i], tostring(new), 'PX', math.ceil((new - now + W) * 1000))
  end
end
return 1
"""


class RedisLimiter(Limiter):
    """Limits shared by every process that uses the same Redis and ``prefix``."""

    def __init__(self, url: str, *, prefix: str = "aiaas:rl:", lease_s: float = 600.0, timeout_s: float = 1.0) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Short socket timeouts and no client-side retries: a Redis that is down or hangs must cost a request
        # at most ``timeout_s`` (``limitstore.ResilientLimiter`` then answers fast until Redis is back).
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
        self._prefix = prefix
        self._lease_s = lease_s
        self._acquire = self._redis.register_script(_ACQUIRE_LUA)
        self._release = self._redis.register_script(_RELEASE_LUA)

    def _plan(self, scopes: Scopes, kinds: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        keys: list[str] = []
        args: list[str] = []
        buckets: list[tuple[str, str]] = []
        for name, spec in scopes:
            for kind, value in (("r", spec.rpm), ("u", spec.upm), ("c", spec.concurrency)):
                if value is None or kind not in kinds:
                    continue
                keys.append(f"{self._prefix}{kind}:{name}")
                args += [kind, repr(float(value))]
                buckets.append((kind, name))
        return keys, args, buckets

    async def acquire(self, scopes: Scopes, lease: str) -> RateState:
        keys, args, buckets = self._plan(scopes, "ruc")
        if not keys:
            return RateState()
        result = await self._acquire(keys=keys, args=[repr(WINDOW_S), lease, repr(self._lease_s), *args])
        denied, retry = int(result[0]), float(result[1])
        remaining = {b: float(v) for b, v in zip(buckets, result[2:], strict=True)}
        if denied:
            kind, name = buckets[denied - 1]
            what = {"r": "requests-per-minute", "u": "units-per-minute", "c": "concurrency"}[kind]
            raise _refusal(what, name, scopes, remaining, retry)
        return _state(scopes, remaining)

    async def release(self, scopes: Scopes, lease: str, units: float) -> None:
        keys, args, _ = self._plan(scopes, "uc" if units > 0 else "c")
        if keys:
            await self._release(keys=keys, args=[repr(WINDOW_S), lease, repr(float(units)), *args])

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
