"""Model control: which model versions are loaded, their states, load / unload / reload.

Each version goes LOADING -> READY (or UNAVAILABLE with the reason) and UNLOADING -> gone. A broken model never
stops the server or any other model. Reloading a served model loads the new versions first and swaps them
in, then drains the old ones, so clients never see a gap. Unloading drains in-flight requests first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiaas.batching import ModelExecutor
from aiaas.errors import InvalidInput, NotFound, ServiceUnavailable, clip
from aiaas.placement.base import Replica
from aiaas.placement.factory import PlacementOptions, make_replica, on_loop, resolve
from aiaas.placement.thread import release_memory
from aiaas.registry import ModelEntry, ModelRepository
from aiaas.runtime import RuntimeContext
from aiaas.service.autoscale import Autoscaler
from aiaas.service.metrics import Metrics
from aiaas.types.model_config import ModelConfig, TensorSpec

log = logging.getLogger("aiaas.models")


def resident_bytes() -> int:
    """The process's resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

PLATFORMS = {"onnx": "onnxruntime_onnx", "python": "python", "pipeline": "ensemble"}


MAX_VERSION_DIGITS = 9  # versions are directory names 0..999999999


def parse_version(version: str | int) -> int:
    """A model version from a URL or a request: ASCII digits only (no Unicode digits, signs or spaces), at most 9."""
    if isinstance(version, int) and not isinstance(version, bool):
        if 0 <= version < 10**MAX_VERSION_DIGITS:
            return version
    else:
        text = str(version)
        if text.isascii() and text.isdigit() and len(text) <= MAX_VERSION_DIGITS:
            return int(text)
    raise InvalidInput(
        f"model version must be a whole number of at most {MAX_VERSION_DIGITS} digits, got {clip(str(version), 40)!r}",
        param="version",
    )


@dataclass
class VersionRecord:
    version: int
    state: str = "LOADING"
    reason: str = ""
    executor: ModelExecutor | None = None
    config: ModelConfig | None = None  # with inputs/outputs resolved from the artifact where needed
    loaded_at: float = 0.0
    memory_bytes: int = 0  # growth of the process's resident memory while this version loaded (approximate)

    @property
    def ready(self) -> bool:
        return self.state == "READY" and self.executor is not None


@dataclass
class ModelRecord:
    name: str
    config: ModelConfig | None = None
    state: str = "UNAVAILABLE"  # model-level: READY when any version is
    reason: str = ""
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    last_error: str = ""  # why the last load or reload failed for some version ("" = it fully succeeded)
    placeholder: bool = False  # shown by mark() before it is on disk (a catalog model waiting for its build)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def latest_ready(self) -> VersionRecord | None:
        ready = [v for v in self.versions.values() if v.ready]
        return max(ready, key=lambda v: v.version) if ready else None


class ModelManager:
    def __init__(
        self,
        repository: ModelRepository,
        context: RuntimeContext,
        metrics: Metrics,
        placement: PlacementOptions | None = None,
    ) -> None:
        self.repository = repository
        self.context = context
        self.metrics = metrics
        self.placement = placement or PlacementOptions()
        self._autoscaler: asyncio.Task[None] | None = None  # started by the first model with autoscale
        self.models: dict[str, ModelRecord] = {}

    # -- queries --------------------------------------------------------------------------------
    def record(self, name: str) -> ModelRecord:
        rec = self.models.get(name)
        if rec is None:
            raise NotFound(f"unknown model {clip(name)!r}")
        return rec

    def resolve(self, name: str, version: str | int | None) -> VersionRecord:
        """The ready version to call; 404 for unknown names and versions, 503 when not ready."""
        rec = self.models.get(name)
        if rec is None:
            raise NotFound(f"unknown model {clip(name)!r}")
        if version is None or version == "":
            vr = rec.latest_ready()
            if vr is None:
                raise ServiceUnavailable(
                    f"model {name!r} is not ready (state {rec.state}{': ' + rec.reason if rec.reason else ''})",
                    retry_after=5,
                )
            return vr
        v = parse_version(version)
        vr = rec.versions.get(v)
        if vr is None:
            if self.unloaded_version(rec, v):
                raise ServiceUnavailable(
                    f"model {name!r} version {v} is not loaded (state "
                    f"{rec.state}{': ' + rec.reason if rec.reason else ''})",
                    retry_after=5,
                )
            raise NotFound(f"model {name!r} has no version {v}")
        if not vr.ready:
            raise ServiceUnavailable(
                f"model {name!r} version {v} is not ready (state {vr.state}{': ' + vr.reason if vr.reason else ''})",
                retry_after=5,
            )
        return vr

    def unloaded_version(self, rec: ModelRecord, version: int) -> bool:
        """A version on disk of a model with nothing loaded (unloaded, or failed): "not ready" (503), not "no such
        version" (404). A version the policy does not serve while others are loaded stays a 404."""
        return not rec.versions and self.repository.version_dir(rec.name, version).is_dir()

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Repository index, Triton style: one row per version, plus the models that are in no loaded state."""
        rows: list[dict[str, Any]] = []
        # A model removed from disk after its unload has nothing left to report: leave it out (it is only
        # listed while versions of it are still loaded).
        loaded = {n for n, r in self.models.items() if r.versions or r.placeholder}
        names = sorted(set(self.repository.names()) | loaded)
        for name in names:
            rec = self.models.get(name)
            if rec is None or not rec.versions:
                if ready_only:
                    continue
                state = rec.state if rec else "UNAVAILABLE"
                reason = rec.reason if rec else "not loaded"
                rows.append({"name": name, "version": "", "state": state, "reason": reason})
                continue
            for v in sorted(rec.versions):
                vr = rec.versions[v]
                if ready_only and not vr.ready:
                    continue
                rows.append({"name": name, "version": str(v), "state": vr.state, "reason": vr.reason})
        return rows

    def not_ready(self) -> list[str]:
        """Models on disk or announced (catalog builds) with no READY version: strict readiness waits for them.
        A model an operator unloaded on purpose is not waited for (as Triton's explicit model control)."""
        names = set(self.repository.names()) | {n for n, r in self.models.items() if r.placeholder or r.versions}
        return sorted(
            n
            for n in names
            if ((r := self.models.get(n)) is None or r.latest_ready() is None) and not (r and r.reason == "unloaded")
        )

    def mark(self, name: str, state: str, reason: str) -> None:
        """Show a model that has no loaded version yet (e.g. a catalog model being built) in the index."""
        rec = self.models.setdefault(name, ModelRecord(name))
        if not rec.versions or not any(v.ready for v in rec.versions.values()):
            rec.state, rec.reason = state, reason
            rec.placeholder = True

    # -- load / unload --------------------------------------------------------------------------
    async def load_all(self) -> None:
        names = self.repository.names()
        await asyncio.gather(*(self.load(n, missing_ok=True) for n in names))

    async def load(self, name: str, missing_ok: bool = False) -> ModelRecord:
        """(Re)load a model from the repository: new config, new versions; old versions drain afterwards."""
        try:
            entry = await asyncio.to_thread(self.repository.read, name)
        except NotFound:
            if missing_ok:
                return ModelRecord(name)
            raise
        rec = self.models.setdefault(name, ModelRecord(name))
        async with rec.lock:
            return await self._load_locked(rec, entry)

    async def _load_locked(self, rec: ModelRecord, entry: ModelEntry) -> ModelRecord:
        name = rec.name
        rec.placeholder = False  # it is on disk now
        if entry.config is None or entry.error:
            await self._drop_versions(rec, list(rec.versions))
            rec.config = entry.config
            rec.state, rec.reason = "UNAVAILABLE", entry.error or "invalid config"
            log.warning("model %s is UNAVAILABLE: %s", name, rec.reason)
            return rec
        config = entry.config
        wanted = (
            config.version_policy.select(entry.versions) if config.backend != "pipeline" else (entry.versions or [1])
        )
        if not wanted:
            rec.state, rec.reason = "UNAVAILABLE", "the version policy selects no existing version"
            return rec
        old = dict(rec.versions)
        new: dict[int, VersionRecord] = {}
        for v in wanted:
            vr = VersionRecord(v)
            new[v] = vr
            if v not in old or not old[v].ready:
                rec.versions.setdefault(v, vr)
            self.metrics.set_state(name, str(v), "LOADING")
        await asyncio.gather(*(self._load_version(config, entry, vr) for vr in new.values()))
        failed = "; ".join(f"version {vr.version}: {vr.reason}" for vr in new.values() if not vr.ready)
        rec.last_error = failed
        if failed and not any(vr.ready for vr in new.values()) and any(vr.ready for vr in old.values()):
            # a broken reload never takes a working model down: keep serving the old versions
            for v, vr in new.items():
                if v not in old or not old[v].ready:
                    old[v] = vr
                self.metrics.set_state(name, str(v), old[v].state)
            rec.versions = old
            rec.reason = f"reload failed, still serving the previous versions: {failed}"
            log.warning("model %s: %s", name, rec.reason)
            return rec
        # swap in the new versions; drain the replaced ones
        rec.versions = new
        rec.config = config
        ready = [vr for vr in new.values() if vr.ready]
        if ready:
            rec.state, rec.reason = "READY", ""
        else:
            rec.state = "UNAVAILABLE"
            rec.reason = "; ".join(f"version {vr.version}: {vr.reason}" for vr in new.values())
        stale = [vr for v, vr in old.items() if vr is not new.get(v)]
        await asyncio.gather(*(self._retire(name, vr) for vr in stale))
        for vr in new.values():
            self.metrics.set_state(name, str(vr.version), vr.state)
        return rec

    async def _load_version(self, config: ModelConfig, entry: ModelEntry, vr: VersionRecord) -> None:
        vdir = self.repository.version_dir(entry.name, vr.version)
        t0, rss0 = time.monotonic(), resident_bytes()
        try:
            replicas, resolved = await asyncio.to_thread(self._build, config, vdir, vr.version)
        except Exception as e:
            vr.state, vr.reason = "UNAVAILABLE", f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)
            log.warning("model %s version %s failed to load: %s", entry.name, vr.version, vr.reason)
            return
        executor = ModelExecutor(resolved, replicas, self.metrics.observer(entry.name))
        executor.start()
        if resolved.autoscale is not None and not executor.is_async:
            executor.factory = functools.partial(self.new_replica, executor, vdir, vr.version)
            if self._autoscaler is None:
                self._autoscaler = asyncio.create_task(Autoscaler(self).run())
        vr.executor, vr.config, vr.state, vr.reason = executor, resolved, "READY", ""
        vr.loaded_at, vr.memory_bytes = time.time(), max(0, resident_bytes() - rss0)
        log.info("model %s version %s READY in %.2fs", entry.name, vr.version, time.monotonic() - t0)

    def new_replica(self, executor: ModelExecutor, vdir: Any, version: int) -> Replica:
        """One more replica of a loaded version, started (blocking: call it in a thread)."""
        config = executor.config
        r = make_replica(
            executor.new_replica_id(),
            resolve(config, vdir, self.placement),
            config,
            vdir,
            self.context,
            self.placement,
            version,
        )
        try:
            r.start()
        except BaseException:
            with contextlib.suppress(Exception):
                r.close()
            raise
        return r

    def _build(self, config: ModelConfig, vdir: Any, version: int = 1) -> tuple[list[Replica], ModelConfig]:
        placement = resolve(config, vdir, self.placement)
        count = config.instances
        if placement == "thread" and on_loop(config, vdir):  # one instance serves every request on the loop
            if count > 1:
                log.info(
                    "model %s: instances %d -> 1 (it runs on the event loop; one instance serves all)",
                    config.name,
                    count,
                )
            count = 1
        replicas = [
            make_replica(f"r{i}", placement, config, vdir, self.context, self.placement, version) for i in range(count)
        ]
        try:
            if len(replicas) == 1 or placement == "thread":
                for r in replicas:
                    r.start()
            else:  # worker processes and actors load side by side
                with ThreadPoolExecutor(len(replicas)) as pool:
                    list(pool.map(lambda r: r.start(), replicas))
        except BaseException:
            for r in replicas:
                with contextlib.suppress(Exception):
                    r.close()
            raise
        resolved = config
        sig = replicas[0].signature()
        if sig is not None:
            inputs, outputs = sig
            update: dict[str, Any] = {}
            if not config.inputs:
                update["inputs"] = inputs
            if not config.outputs:
                update["outputs"] = outputs
            if update:
                resolved = config.model_copy(update=update)
            _check_against_artifact(config, inputs, outputs)
        return replicas, resolved

    async def unload(self, name: str, release: bool = True) -> None:
        rec = self.record(name)
        async with rec.lock:
            await self._drop_versions(rec, list(rec.versions), release)
            rec.state, rec.reason = "UNAVAILABLE", "unloaded"

    async def _drop_versions(self, rec: ModelRecord, versions: list[int], release: bool = True) -> None:
        doomed = [rec.versions.pop(v) for v in versions if v in rec.versions]
        await asyncio.gather(*(self._retire(rec.name, vr, release) for vr in doomed))

    async def _retire(self, name: str, vr: VersionRecord, release: bool = True) -> None:
        executor = vr.executor
        vr.state = "UNLOADING"
        self.metrics.set_state(name, str(vr.version), "UNLOADING")
        if executor is not None:
            await executor.drain()
            await asyncio.to_thread(executor.unload, release)
        vr.executor = None
        vr.state = "UNAVAILABLE"
        vr.reason = "unloaded"
        self.metrics.set_state(name, str(vr.version), "UNAVAILABLE")

    async def watch(self, interval_s: float) -> None:
        """Load models that appear in the repository and retire those whose directory vanished."""
        while True:
            await asyncio.sleep(interval_s)
            on_disk = set(await asyncio.to_thread(self.repository.names))
            for name in sorted(on_disk - set(self.models)):
                await self.load(name, missing_ok=True)
            for name in sorted(set(self.models) - on_disk):
                if self.models[name].placeholder:
                    continue  # marked (e.g. being built), not on disk yet
                if self.models[name].versions:
                    await self.unload(name)
                self.models.pop(name, None)

    async def close(self) -> None:
        if self._autoscaler is not None:
            self._autoscaler.cancel()
        for shared in self.placement.extra.values():  # Ray replicas stay for the deployment's other servers
            shared.shutting_down = True
        await asyncio.gather(*(self.unload(n, release=False) for n in list(self.models)), return_exceptions=True)
        await asyncio.to_thread(release_memory)  # once for all models, not once per model


def _check_against_artifact(config: ModelConfig, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    """A config that promises tensors the artifact does not have is a broken model, said plainly at load."""
    art_in = {t.name: t for t in inputs}
    art_out = {t.name for t in outputs}
    for t in config.inputs:
        if t.name not in art_in:
            raise ValueError(f"config input {t.name!r} is not an input of the artifact (it has {sorted(art_in)})")
        if art_in[t.name].datatype != t.datatype:
            raise ValueError(
                f"config input {t.name!r} is {t.datatype} but the artifact expects {art_in[t.name].datatype}"
            )
    for t in config.outputs:
        if t.name not in art_out:
            raise ValueError(f"config output {t.name!r} is not an output of the artifact (it has {sorted(art_out)})")
