"""Dynamic batching and replicas around ``Model`` instances of one model version.

``ModelExecutor.infer`` puts a request into a bounded queue; one thread per instance takes as many
compatible requests as are waiting (same input names, dtypes and non-batch dims), up to ``max_batch_size``
rows, concatenates them along axis 0, runs the model (onnxruntime releases the GIL, so instances run truly
in parallel), splits the outputs and hands them to the event loop in one callback per batch: a list in, a list
of the same length out, each request with its own result or its own error (a failed batch is retried request
by request, so one bad request cannot fail its neighbours). Instances are ``Replica`` objects (aiaas.placement):
in this process, in a worker process or in a Ray actor; the requests of a replica that died are retried once on
another ready replica.

The modules: ``policy.py`` (which requests share a batch, how many rows, how long to wait for company),
``workers.py`` (the replica threads that gather, run and answer batches), ``stats.py`` (Triton-style
statistics), ``items.py`` (a queued request and its result); this one holds the queue, the replicas and the
request entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from aiaas.batching.items import InferResult, Item
from aiaas.batching.policy import BatchPolicy
from aiaas.batching.stats import BatchObserver, ModelStats
from aiaas.batching.workers import ReplicaThreads
from aiaas.errors import AiaasError, InferenceError, ServiceUnavailable
from aiaas.placement.base import Replica
from aiaas.placement.thread import ThreadReplica, release_memory
from aiaas.runtime.base import Model, Tensors
from aiaas.types.model_config import ModelConfig

log = logging.getLogger("aiaas.batching")


class ModelExecutor(ReplicaThreads):
    """Queue + batcher + replicas of one model version (bare ``Model`` instances run as thread replicas)."""

    def __init__(
        self, config: ModelConfig, instances: Sequence[Model | Replica], observer: BatchObserver | None = None
    ) -> None:
        self.config = config
        self.replicas: list[Replica] = [
            r if isinstance(r, Replica) else ThreadReplica(f"r{i}", r).mark_loaded() for i, r in enumerate(instances)
        ]
        self._next_id = len(self.replicas)
        self.observer = observer
        self.stats = ModelStats()
        self.retried = 0  # requests retried on another replica after theirs was lost (a count, for operators and tests)
        self.policy = BatchPolicy(config)  # batch keys, how many rows, how long to wait (policy.py)
        self.max_queue = config.batching.max_queue_size
        self.timeout_s = config.batching.timeout_ms / 1000.0
        self.is_async = bool(self.replicas and self.replicas[0].is_async)
        self._queue: deque[Item] = deque()  # guarded by _cond (the event loop appends, instance threads take)
        self._cond = threading.Condition()
        self._in_system = 0  # requests queued, running or being answered (event loop only)
        self._running_rows = 0  # rows in the batches running now
        self._running = 0  # instance threads running a batch
        self._closing = False  # draining: new requests are refused
        self._stopping = False  # instance threads exit once the queue is empty
        self._threads: dict[str, threading.Thread] = {}  # replica id -> its batcher thread
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        # scale from zero (autoscale min_replicas 0): builds and starts one replica; the first request with no
        # live replica starts it, and concurrent first requests share that one start
        self.factory: Callable[[], Replica] | None = None
        self._cold_start: asyncio.Future[None] | None = None
        self.last_request = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        if not self.is_async:
            for r in self.replicas:
                self._spawn(r)

    def loop_model(self) -> Model | None:
        """The one in-process instance of a model that runs on the event loop (an LLM, a pipeline), else None."""
        replica = self.replicas[0] if self.is_async and self.replicas else None
        return replica.model if isinstance(replica, ThreadReplica) else None

    @property
    def instances(self) -> list[Model]:
        """The in-process model instances (thread placement), e.g. the LLM engine the OpenAI routes stream from."""
        return [r.model for r in self.replicas if isinstance(r, ThreadReplica)]

    def new_replica_id(self) -> str:
        rid = f"r{self._next_id}"
        self._next_id += 1
        return rid

    def add_replica(self, replica: Replica) -> None:
        """Serve with one more replica (already started: ready before any old one retires)."""
        self.replicas.append(replica)
        if self._loop is not None and not self.is_async:
            self._spawn(replica)

    def retire_replica(self, replica: Replica) -> threading.Thread | None:
        """Stop giving ``replica`` batches; its thread finishes the batch it runs, closes it and exits."""
        replica.retiring = True
        with self._cond:
            self._cond.notify_all()
        return self._threads.get(replica.id)

    async def drain(self, timeout: float | None = None) -> None:
        """Refuse new requests, let queued and running ones finish (the queue empties before workers stop)."""
        self._closing = True
        assert self._idle is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        with self._cond:
            self._stopping = True
            left, self._queue = list(self._queue), deque()  # only after a drain timeout
            self._cond.notify_all()
        for item in left:
            if not item.future.done():
                item.future.set_exception(ServiceUnavailable("model was unloaded before this request ran"))

    def unload(self, release: bool = True) -> None:
        """Unload every instance; ``release=False`` leaves returning the heap to the caller (one
        ``release_memory()`` after unloading many models instead of one per model)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in list(self._threads.values()):  # a batch still running after a drain timeout finishes first
            t.join()
        self._threads = {}
        for r in self.replicas:
            with contextlib.suppress(Exception):
                r.close()
        self.replicas = []
        if release:
            release_memory()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def in_system(self) -> int:
        """Requests queued, running or being answered."""
        return self._in_system

    def oldest_wait_s(self) -> float:
        """How long the request at the head of the queue has waited (0 when none waits)."""
        queue = self._queue
        return time.monotonic() - queue[0].enqueued if queue else 0.0

    def _start_one(self) -> None:
        if self._cold_start is None or self._cold_start.done():
            self._cold_start = asyncio.ensure_future(self._cold())

    async def _cold(self) -> None:
        assert self.factory is not None
        try:
            replica = await asyncio.to_thread(self.factory)
        except Exception as e:
            log.error("model %r: could not start a replica: %s", self.config.name, e)
            with self._cond:
                left, self._queue = list(self._queue), deque()
            for item in left:
                if not item.future.done():
                    item.future.set_exception(
                        ServiceUnavailable(f"model {self.config.name!r} could not start a replica: {e}", retry_after=5)
                    )
            return
        if self._closing:
            await asyncio.to_thread(replica.close)
            return
        self.add_replica(replica)

    # -- requests -------------------------------------------------------------------------------
    async def infer(self, inputs: Tensors, parameters: dict[str, Any]) -> InferResult:
        if self._closing:
            raise ServiceUnavailable(f"model {self.config.name!r} is unloading", retry_after=1)
        if self.is_async:
            return await self._infer_async(inputs, parameters)
        if len(self._queue) >= self.max_queue:  # a racy read is fine for a soft bound
            raise ServiceUnavailable(
                f"model {self.config.name!r} is overloaded: {len(self._queue)} requests queued "
                f"(max_queue_size {self.max_queue}); retry later",
                retry_after=1,
            )
        rows, key = self.policy.batch_key(inputs, parameters)
        now = time.monotonic()
        fut: asyncio.Future[InferResult] = asyncio.get_running_loop().create_future()
        with self._cond:
            self._queue.append(Item(inputs, parameters, rows, key, fut, now, now + self.timeout_s))
            self._cond.notify()
        self.last_request = now
        if self.factory is not None and not any(not r.retiring for r in self.replicas):
            self._start_one()
        self._enter()
        if self.observer:
            self.observer.queue_depth(len(self._queue))
        try:
            return await fut
        finally:
            self._leave()

    async def _infer_async(self, inputs: Tensors, parameters: dict[str, Any]) -> InferResult:
        self._enter()
        t0 = time.monotonic()
        try:
            model = self.loop_model()
            if model is None:
                raise ServiceUnavailable(f"model {self.config.name!r} is unloading", retry_after=1)
            outputs = await model.predict(inputs, parameters)
        except AiaasError:
            self.stats.fail.add(time.monotonic() - t0)
            raise
        except Exception as e:
            self.stats.fail.add(time.monotonic() - t0)
            raise InferenceError(f"model {self.config.name!r} failed: {e}") from e
        finally:
            self._leave()
        dt = time.monotonic() - t0
        self.stats.record_batch(1, dt)
        self.stats.success.add(dt)
        return InferResult(outputs, 0.0, dt, 1)

    def _enter(self) -> None:
        self._in_system += 1
        assert self._idle is not None
        self._idle.clear()

    def _leave(self) -> None:
        self._in_system -= 1
        if self._in_system == 0 and self._idle is not None:
            self._idle.set()
