"""Autoscaling: replicas follow the measured queue time of models with ``autoscale:`` in model.yaml.

Every ``interval_s`` the autoscaler reads, for each ready version, the mean queue time of the requests answered
since its last look and the wait of the oldest request still queued. Above ``target_queue_ms`` it starts one
more replica (up to ``max_replicas``; the new one is ready before it takes work). Below half the target for
``scale_down_delay_s`` it retires one (down to ``min_replicas``); with ``min_replicas: 0`` the last one retires
once no request came for that long, and the next request starts a replica again (concurrent first requests
share that start, see ``ModelExecutor.factory``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiaas.batching import ModelExecutor

if TYPE_CHECKING:
    from aiaas.service.models import ModelManager, VersionRecord

log = logging.getLogger("aiaas.autoscale")


@dataclass
class _Seen:
    count: int
    ns: int
    low_since: float | None = None
    starting: asyncio.Future[None] | None = None  # the replica start in progress


class Autoscaler:
    def __init__(self, manager: ModelManager, interval_s: float = 0.5) -> None:
        self.manager = manager
        self.interval_s = interval_s
        self._seen: dict[int, _Seen] = {}  # id(executor) -> what the last look saw

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            for name, rec in list(self.manager.models.items()):
                for vr in list(rec.versions.values()):
                    if vr.ready and vr.config is not None and vr.config.autoscale is not None:
                        try:
                            await self.step(name, vr)
                        except Exception:
                            log.exception("autoscale of model %s version %s failed", name, vr.version)

    async def step(self, name: str, vr: VersionRecord) -> None:
        ex, config = vr.executor, vr.config
        assert ex is not None and config is not None and config.autoscale is not None
        policy = config.autoscale
        q = ex.stats.queue
        seen = self._seen.get(id(ex))
        if seen is None:
            self._seen[id(ex)] = _Seen(q.count, q.ns)
            return
        n, ns = q.count - seen.count, q.ns - seen.ns
        seen.count, seen.ns = q.count, q.ns
        queue_ms = max(ns / n / 1e6 if n else 0.0, 1000 * ex.oldest_wait_s())
        live = [r for r in ex.replicas if not r.retiring]
        now = time.monotonic()
        if not any(r.ready for r in live):
            return  # a first start is under way: requests wait for it, not for capacity
        if queue_ms > policy.target_queue_ms and len(live) < policy.max_replicas and ex.factory is not None:
            seen.low_since = None
            if seen.starting is None or seen.starting.done():
                seen.starting = asyncio.ensure_future(self._add(name, ex, queue_ms))
            return
        if queue_ms >= policy.target_queue_ms / 2 or len(live) <= policy.min_replicas:
            seen.low_since = None
            return
        if seen.low_since is None:
            seen.low_since = now
            return
        if now - seen.low_since < policy.scale_down_delay_s:
            return
        if len(live) == 1 and (ex.in_system or now - ex.last_request < policy.scale_down_delay_s):
            return  # to zero only when idle that long
        victim = max(live, key=lambda r: int(r.id[1:]) if r.id[1:].isdigit() else 0)
        log.info("model %s: queue %.1f ms, retiring replica %s (%d left)", name, queue_ms, victim.id, len(live) - 1)
        ex.retire_replica(victim)
        seen.low_since = now

    async def _add(self, name: str, ex: ModelExecutor, queue_ms: float) -> None:
        assert ex.factory is not None
        try:
            log.info("model %s: queue %.1f ms, starting a replica (%d now)", name, queue_ms, len(ex.replicas))
            replica = await asyncio.to_thread(ex.factory)
            ex.add_replica(replica)
        except Exception as e:
            log.error("model %s: autoscale could not start a replica: %s", name, e)
