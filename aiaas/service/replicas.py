"""Replicas as a resource: list a model's replicas, change their count without dropping a request.

Scaling up starts the new replicas first (they load beside the serving ones) and adds them to the executor;
scaling down marks replicas retiring: each finishes the batch it is running, takes no other, then closes. A
new count lasts until the model is reloaded (``instances`` in model.yaml is the count a load starts with).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiaas.batching import ModelExecutor
from aiaas.errors import InvalidInput, NotFound
from aiaas.placement.factory import make_replica, resolve
from aiaas.service.control import ModelControl
from aiaas.service.governance import Principal
from aiaas.service.models import ModelManager, VersionRecord
from aiaas.store.db import Store

MAX_REPLICAS = 64  # per model version and request


def replica_rows(name: str, vr: VersionRecord) -> list[dict[str, Any]]:
    ex = vr.executor
    if ex is None:
        return []
    return [{"model": name, "version": vr.version, **r.info()} for r in list(ex.replicas)]


class ReplicaControl:
    def __init__(self, models: ModelManager, control: ModelControl, store: Store | None) -> None:
        self.models = models
        self.control = control
        self.store = store

    def list(self, p: Principal, name: str) -> dict[str, Any]:
        if not self.control.visible(p, name) or name not in self.models.models:
            raise NotFound(f"unknown model {name!r}")
        rec = self.models.models[name]
        rows = [row for v in sorted(rec.versions) for row in replica_rows(name, rec.versions[v])]
        return {"model": name, "replicas": rows}

    async def scale(self, p: Principal, name: str, replicas: Any) -> dict[str, Any]:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"'replicas' must be an integer from 1 to {MAX_REPLICAS}, got {replicas!r}")
        self.control.check_manage(p, name, "scaling")
        rec = self.models.record(name)
        async with rec.lock:
            ready = [vr for vr in rec.versions.values() if vr.ready]
            if not ready:
                raise InvalidInput(f"model {name!r} has no ready version to scale (state {rec.state})")
            before = {vr.version: _live(vr.executor) for vr in ready if vr.executor is not None}
            for vr in ready:
                assert vr.executor is not None
                await self._scale_version(name, vr, replicas)
        self._audit(p, name, {"replicas": replicas, "before": before})
        return self.list(p, name)

    async def _scale_version(self, name: str, vr: VersionRecord, n: int) -> None:
        ex, config = vr.executor, vr.config
        assert ex is not None and config is not None
        if ex.is_async:
            raise InvalidInput(f"model {name!r} runs on the server's event loop and has exactly one replica")
        live = [r for r in ex.replicas if not r.retiring]
        if n > len(live):
            vdir = self.models.repository.version_dir(name, vr.version)
            placement = await asyncio.to_thread(resolve, config, vdir, self.models.placement)
            new = [
                make_replica(
                    ex.new_replica_id(), placement, config, vdir, self.models.context, self.models.placement, vr.version
                )
                for _ in range(n - len(live))
            ]
            started = await asyncio.gather(*(asyncio.to_thread(r.start) for r in new), return_exceptions=True)
            errors = [e for e in started if isinstance(e, BaseException)]
            for r, res in zip(new, started, strict=True):
                if isinstance(res, BaseException):
                    await asyncio.to_thread(r.close)
                else:
                    ex.add_replica(r)  # ready before any old one retires
            if errors:
                raise InvalidInput(f"model {name!r}: {len(errors)} new replica(s) failed to start: {errors[0]}")
        elif n < len(live):
            # the newest go first; each finishes the batch it runs, then closes on its own thread
            for r in sorted(live, key=lambda r: int(r.id[1:]) if r.id[1:].isdigit() else 0)[n:]:
                ex.retire_replica(r)

    def _audit(self, p: Principal, name: str, details: dict[str, Any]) -> None:
        if self.store is None:
            return
        from aiaas.service.governance.audit import write_audit

        with self.store.session() as session:
            write_audit(session, p, "model.scale", name, tenant=self.control.owner(name), details=details)


def _live(ex: ModelExecutor | None) -> int:
    return 0 if ex is None else sum(not r.retiring for r in ex.replicas)
