"""Dynamic batching and replicas around ``Model`` instances of one model version.

``ModelExecutor.infer`` puts a request into a bounded queue; one worker coroutine per instance takes as many
compatible requests as are waiting (same input names, dtypes and non-batch dims), up to ``max_batch_size``
rows, concatenates them along axis 0, runs the model in a thread (onnxruntime releases the GIL, so
instances run truly in parallel), and splits the outputs back: a list in, a list of the same length out, each
request with its own result or its own error (a failed batch is retried request by request, so one bad
request cannot fail its neighbours).

Waiting for company: a worker waits up to ``max_queue_delay_ms`` for more requests only while its batch holds
fewer requests than recent batches did (a moving average). A lone client's request runs at once, so batching
costs no latency at concurrency 1, while a crowd of clients is gathered into full batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aiaas.errors import AiaasError, DeadlineExceeded, InferenceError, InvalidInput, ServiceUnavailable
from aiaas.runtime.base import Model, Tensors
from aiaas.types.model_config import ModelConfig

_SPLIT_MIN_S = 0.002  # idle instances split the waiting work only when it would take longer than this


class BatchObserver(Protocol):
    def batch(self, size: int, compute_s: float) -> None: ...

    def queue_depth(self, depth: int) -> None: ...


@dataclass(slots=True)
class InferResult:
    outputs: Tensors
    queue_s: float  # time spent waiting in the queue
    compute_s: float  # time of the model call this request was part of
    batch_size: int  # rows in that model call


@dataclass(slots=True)
class _Item:
    inputs: Tensors
    parameters: dict[str, Any]
    rows: int
    key: tuple[Any, ...]
    future: asyncio.Future[InferResult]
    enqueued: float
    deadline: float


@dataclass
class _Counter:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, n: int = 1) -> None:
        self.count += n
        self.ns += int(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Triton-style statistics for one model version."""

    inference_count: int = 0  # rows inferred
    execution_count: int = 0  # model calls
    last_inference_ms: int = 0
    success: _Counter = field(default_factory=_Counter)
    fail: _Counter = field(default_factory=_Counter)
    queue: _Counter = field(default_factory=_Counter)
    compute_infer: _Counter = field(default_factory=_Counter)
    batches: dict[int, _Counter] = field(default_factory=dict)

    def record_batch(self, size: int, compute_s: float) -> None:
        self.execution_count += 1
        self.inference_count += size
        self.last_inference_ms = int(time.time() * 1000)
        self.batches.setdefault(size, _Counter()).add(compute_s)


def release_memory() -> None:
    """Return freed heap to the OS after an unload (glibc keeps it otherwise, and RSS would not drop)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class ModelExecutor:
    """Queue + batcher + ``instances`` replicas of one model version."""

    def __init__(self, config: ModelConfig, instances: list[Model], observer: BatchObserver | None = None) -> None:
        self.config = config
        self.instances = instances
        self.observer = observer
        self.stats = ModelStats()
        b = config.batching
        self.max_batch = max(1, config.max_batch_size)
        self.batching = config.max_batch_size > 0
        self.delay_s = b.max_queue_delay_ms / 1000.0
        self.preferred = sorted(b.preferred_batch_sizes)
        self.max_queue = b.max_queue_size
        self.timeout_s = b.timeout_ms / 1000.0
        self.is_async = bool(instances and instances[0].is_async)
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._in_system = 0  # requests queued or running
        self._recent = 1.0  # moving average of requests per batch (plus those left waiting)
        self._row_s = 0.0  # moving average of compute seconds per row (0 until the first batch ran)
        self._running = 0
        self._closing = False
        self._workers: list[asyncio.Task[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._idle: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        if not self.is_async:
            self._pool = ThreadPoolExecutor(max_workers=len(self.instances), thread_name_prefix="aiaas-model")
            self._workers = [asyncio.create_task(self._worker(m)) for m in self.instances]

    async def drain(self, timeout: float | None = None) -> None:
        """Refuse new requests, let queued and running ones finish (the queue empties before workers stop)."""
        self._closing = True
        assert self._idle is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        for t in self._workers:
            t.cancel()
        for t in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        while self._queue:  # only after a drain timeout
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ServiceUnavailable("model was unloaded before this request ran"))

    def unload(self, release: bool = True) -> None:
        """Unload every instance; ``release=False`` leaves returning the heap to the caller (one
        ``release_memory()`` after unloading many models instead of one per model)."""
        for m in self.instances:
            with contextlib.suppress(Exception):
                m.unload()
        self.instances = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if release:
            release_memory()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # -- requests -------------------------------------------------------------------------------
    async def infer(self, inputs: Tensors, parameters: dict[str, Any]) -> InferResult:
        if self._closing:
            raise ServiceUnavailable(f"model {self.config.name!r} is unloading", retry_after=1)
        if self.is_async:
            return await self._infer_async(inputs, parameters)
        if len(self._queue) >= self.max_queue:
            raise ServiceUnavailable(
                f"model {self.config.name!r} is overloaded: {len(self._queue)} requests queued "
                f"(max_queue_size {self.max_queue}); retry later",
                retry_after=1,
            )
        rows, key = self._batch_key(inputs, parameters)
        now = time.monotonic()
        fut: asyncio.Future[InferResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(inputs, parameters, rows, key, fut, now, now + self.timeout_s))
        self._enter()
        if self.observer:
            self.observer.queue_depth(len(self._queue))
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            return await fut
        finally:
            self._leave()

    async def _infer_async(self, inputs: Tensors, parameters: dict[str, Any]) -> InferResult:
        self._enter()
        t0 = time.monotonic()
        try:
            outputs = await self.instances[0].predict_async(inputs, parameters)
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

    def _batch_key(self, inputs: Tensors, parameters: dict[str, Any]) -> tuple[int, tuple[Any, ...]]:
        if not self.batching:
            return 1, ()
        rows = -1
        parts: list[Any] = []
        for name in sorted(inputs):
            arr = inputs[name]
            if arr.ndim == 0:
                raise InvalidInput(f"input {name!r}: a batched model needs a batch dimension (shape [rows, ...])")
            if rows == -1:
                rows = arr.shape[0]
            elif arr.shape[0] != rows:
                raise InvalidInput(
                    f"input {name!r} has {arr.shape[0]} rows but other inputs have {rows}: the first dimension "
                    "is the batch and must match"
                )
            parts.append((name, arr.dtype.str, arr.shape[1:]))
        if rows > self.max_batch:
            raise InvalidInput(
                f"batch of {rows} rows exceeds max_batch_size {self.max_batch} of model {self.config.name!r}"
            )
        if parameters:
            parts.append(tuple(sorted((k, repr(v)) for k, v in parameters.items())))
        return rows, tuple(parts)

    # -- the worker -----------------------------------------------------------------------------
    async def _collect(self) -> list[_Item]:
        """Take the first waiting request and every compatible one behind it, waiting for company if useful."""
        assert self._wakeup is not None
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        first = self._queue.popleft()
        batch, rows = [first], first.rows
        if not self.batching:
            return batch
        cap = self.max_batch
        # Idle instances share what is waiting, so they run side by side: one taking everything while the others
        # idle halves throughput on a CPU (16 clients, 2 instances: batches of 16 alternating between them).
        # Only worth it when that work is long next to the cost of one more model call (~0.1 ms): a tiny model
        # keeps its large batches.
        idle = len(self.instances) - self._running  # this worker included; a running one does not count
        if idle > 1 and self._queue and (len(self._queue) + 1) * self._row_s > _SPLIT_MIN_S:
            waiting = rows + sum(it.rows for it in self._queue)
            cap = min(cap, max(rows, -(-waiting // idle)))
        target = next((p for p in self.preferred if p > rows), cap) if self.preferred else cap
        target = min(target, cap)
        # How many requests recent batches held: a lone client never waits, a crowd waits for its members.
        expect = max(1, int(self._recent * 0.8))
        give_up = time.monotonic() + self.delay_s
        while rows < target:
            for it in self._take_compatible(first.key, cap - rows):
                batch.append(it)
                rows += it.rows
            remaining = give_up - time.monotonic()
            if rows >= target or len(batch) >= expect or remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                batch.extend(self._take_compatible(first.key, cap - rows))
                break
        self._recent += 0.25 * (len(batch) + len(self._queue) - self._recent)
        return batch

    def _take_compatible(self, key: tuple[Any, ...], room: int) -> list[_Item]:
        taken: list[_Item] = []
        if not self._queue:
            return taken
        keep: deque[_Item] = deque()
        while self._queue:
            it = self._queue.popleft()
            if it.key == key and it.rows <= room:
                taken.append(it)
                room -= it.rows
            else:
                keep.append(it)
            if room <= 0:
                break
        keep.extend(self._queue)
        self._queue = keep
        return taken

    async def _worker(self, model: Model) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            now = time.monotonic()
            live: list[_Item] = []
            for it in batch:
                if it.future.done():  # the client went away
                    continue
                if now > it.deadline:
                    self.stats.fail.add(now - it.enqueued)
                    it.future.set_exception(
                        DeadlineExceeded(
                            f"request waited {1000 * (now - it.enqueued):.0f} ms in the queue of model "
                            f"{self.config.name!r}, past its timeout_ms {self.timeout_s * 1000:.0f}"
                        )
                    )
                    continue
                live.append(it)
            if not live:
                continue
            self._running += 1
            try:
                await self._run(loop, model, live, now)
            finally:
                self._running -= 1
            if self.observer:
                self.observer.queue_depth(len(self._queue))

    async def _run(self, loop: asyncio.AbstractEventLoop, model: Model, items: list[_Item], started: float) -> None:
        assert self._pool is not None
        rows = sum(it.rows for it in items)
        if len(items) == 1:
            inputs = items[0].inputs
        else:
            inputs = {name: np.concatenate([it.inputs[name] for it in items]) for name in items[0].inputs}
        t0 = time.monotonic()
        try:
            outputs = await loop.run_in_executor(self._pool, model.predict, inputs, items[0].parameters)
            error: BaseException | None = None
        except Exception as e:
            outputs, error = {}, e
        compute = time.monotonic() - t0
        self._row_s += 0.25 * (compute / max(1, rows) - self._row_s)
        if self.observer:
            self.observer.batch(rows, compute)
        if error is not None:
            if len(items) > 1:  # find the culprit: rerun one by one, each gets its own answer
                for it in items:
                    await self._run(loop, model, [it], started)
                return
            self._fail(items[0], error, started, compute)
            return
        if self.batching:
            for name, out in outputs.items():
                if not isinstance(out, np.ndarray) or out.ndim == 0 or out.shape[0] != rows:
                    err = InferenceError(
                        f"model {self.config.name!r} returned output {name!r} with shape "
                        f"{getattr(out, 'shape', None)}, not batch-first with {rows} rows"
                    )
                    for it in items:
                        self._fail(it, err, started, compute)
                    return
        # Triton semantics: execution_count / inference_count / batch stats count successful executions only
        # (a failed batch is retried request by request, and counting it too would double its rows).
        self.stats.record_batch(rows, compute)
        offset = 0
        for it in items:
            if len(items) == 1:
                part = outputs
            else:
                part = {k: v[offset : offset + it.rows] for k, v in outputs.items()}
                offset += it.rows
            queue_s = t0 - it.enqueued
            self.stats.queue.add(queue_s)
            self.stats.compute_infer.add(compute)
            self.stats.success.add(time.monotonic() - it.enqueued)
            if not it.future.done():
                it.future.set_result(InferResult(part, queue_s, compute, rows))

    def _fail(self, item: _Item, error: BaseException, started: float, compute: float) -> None:
        self.stats.fail.add(time.monotonic() - item.enqueued)
        if not isinstance(error, AiaasError):
            error = InferenceError(f"model {self.config.name!r} failed: {type(error).__name__}: {error}")
        if not item.future.done():
            item.future.set_exception(error)
