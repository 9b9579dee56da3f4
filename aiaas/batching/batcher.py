"""Dynamic batching and replicas around ``Model`` instances of one model version.

``ModelExecutor.infer`` puts a request into a bounded queue; one thread per instance takes as many
compatible requests as are waiting (same input names, dtypes and non-batch dims), up to ``max_batch_size``
rows, concatenates them along axis 0, runs the model (onnxruntime releases the GIL, so instances run truly
in parallel), splits the outputs and hands them to the event loop in one callback per batch: a list in, a list
of the same length out, each request with its own result or its own error (a failed batch is retried request
by request, so one bad request cannot fail its neighbours). Instances are ``Replica`` objects (aiaas.placement):
in this process, in a worker process or in a Ray actor; the requests of a replica that died are retried once on
another ready replica.

Waiting for company: a worker waits up to ``max_queue_delay_ms`` for more requests only while its batch holds
fewer requests than recent batches did (a moving average). A lone client's request runs at once, so batching
costs no latency at concurrency 1, while a crowd of clients is gathered into full batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiaas.errors import AiaasError, DeadlineExceeded, InferenceError, InvalidInput, ServiceUnavailable
from aiaas.placement.base import Replica, ReplicaLost
from aiaas.placement.thread import ThreadReplica
from aiaas.runtime.base import Model, Tensors
from aiaas.types.model_config import ModelConfig

log = logging.getLogger("aiaas.batching")
_SPLIT_MIN_S = 0.002  # idle instances split the waiting work only when it would take longer than this
_AUTO_DELAY_FRACTION = 0.25  # default delay: up to this fraction of a batch's compute time


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
    retried: bool = False  # already retried once after its replica was lost


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
        b = config.batching
        self.max_batch = max(1, config.max_batch_size)
        self.batching = config.max_batch_size > 0
        self.delay_s = b.max_queue_delay_ms / 1000.0
        self.preferred = sorted(b.preferred_batch_sizes)
        self.max_queue = b.max_queue_size
        self.timeout_s = b.timeout_ms / 1000.0
        self.is_async = bool(self.replicas and self.replicas[0].is_async)
        self._queue: deque[_Item] = deque()  # guarded by _cond (the event loop appends, instance threads take)
        self._cond = threading.Condition()
        self._in_system = 0  # requests queued, running or being answered (event loop only)
        self._recent = 1.0  # moving average of the crowd a batch could gather (see _gather)
        self._running_rows = 0  # rows in the batches running now
        self._batch_s = 0.0  # moving average of the compute seconds of one batch
        # max_queue_delay_ms left at its default: it may grow to a fraction of the batch time (see _gather)
        self.auto_delay = "max_queue_delay_ms" not in b.model_fields_set
        self._row_s = 0.0  # moving average of compute seconds per row (0 until the first batch ran)
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

    def _spawn(self, replica: Replica) -> None:
        t = threading.Thread(
            target=self._thread_main, args=(replica,), name=f"aiaas-{self.config.name or 'model'}-{replica.id}",
            daemon=True,
        )  # fmt: skip
        self._threads[replica.id] = t
        t.start()

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
        rows, key = self._batch_key(inputs, parameters)
        now = time.monotonic()
        fut: asyncio.Future[InferResult] = asyncio.get_running_loop().create_future()
        with self._cond:
            self._queue.append(_Item(inputs, parameters, rows, key, fut, now, now + self.timeout_s))
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

    # -- the instance threads -------------------------------------------------------------------
    # Each instance has its own thread that gathers a batch, runs the model and hands the answers back to the
    # event loop with one callback per batch. The thread never waits for the event loop to start its next batch:
    # under load the loop is busy parsing requests, and a worker coroutine resumed behind that work would leave
    # its cores idle for milliseconds after every batch.
    def _collect(self, replica: Replica) -> list[_Item] | None:
        """Take the first waiting request and every compatible one behind it, waiting for company if useful.
        Runs on a replica's thread; returns None when the executor stops or the replica retires."""
        with self._cond:
            while not self._queue or replica.retiring:
                if self._stopping or replica.retiring:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, rows = [first], first.rows
            if self.batching:
                rows = self._gather(first, batch, rows)
            self._running += 1
            self._running_rows += rows
            return batch

    def _gather(self, first: _Item, batch: list[_Item], rows: int) -> int:
        """Called with ``_cond`` held: extend ``batch`` with compatible waiting requests; returns its rows."""
        cap = self.max_batch
        # Idle instances share what is waiting, so they run side by side: one taking everything while the others
        # idle halves throughput on a CPU (16 clients, 2 instances: batches of 16 alternating between them).
        # Only worth it when that work is long next to the cost of one more model call (~0.1 ms): a tiny model
        # keeps its large batches.
        idle = sum(r.ready for r in self.replicas) - self._running  # this worker included; a running one does not count
        if idle > 1 and self._queue and (len(self._queue) + 1) * self._row_s > _SPLIT_MIN_S:
            waiting = rows + sum(it.rows for it in self._queue)
            cap = min(cap, max(rows, -(-waiting // idle)))
        target = next((p for p in self.preferred if p > rows), cap) if self.preferred else cap
        target = min(target, cap)
        # The crowd: requests in the system that no other instance is running -- this one, those queued, and
        # those whose answers are on their way back (their clients are about to send the next ones). A lone
        # client never waits; a crowd waits for (most of) its members, so a big model runs full batches instead
        # of settling into two half batches that alternate.
        crowd = max(1, self._in_system - self._running_rows)
        self._recent += 0.25 * (crowd - self._recent)
        expect = min(max(1, int(self._recent * 0.8)), cap)
        wait_s = self.delay_s
        if self.auto_delay:  # the default delay grows with the model: waiting 5 ms to double a 50 ms batch pays
            wait_s = max(wait_s, _AUTO_DELAY_FRACTION * self._batch_s)
        give_up = time.monotonic() + wait_s
        while rows < target:
            for it in self._take_compatible(first.key, cap - rows):
                batch.append(it)
                rows += it.rows
            remaining = give_up - time.monotonic()
            if rows >= target or len(batch) >= expect or remaining <= 0 or self._stopping:
                break
            self._cond.wait(remaining)
        return rows

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

    def _thread_main(self, replica: Replica) -> None:
        while True:
            while not replica.wait_ready(1.0):  # (re)starting: take no batch meanwhile
                if self._stopping or replica.retiring or replica.state in ("failed", "stopped"):
                    self._retired(replica)
                    return
            batch = self._collect(replica)
            if batch is None:
                self._retired(replica)
                return
            out: list[tuple[_Item, InferResult | BaseException]] = []  # each request's answer
            batches: list[tuple[int, float]] = []  # (rows, seconds) of each successful model call
            try:
                now = time.monotonic()
                live: list[_Item] = []
                for it in batch:
                    if it.future.done():  # the client went away (a racy read is fine: at worst one wasted row)
                        continue
                    if now > it.deadline:
                        out.append((it, DeadlineExceeded(
                            f"request waited {1000 * (now - it.enqueued):.0f} ms in the queue of model "
                            f"{self.config.name!r}, past its timeout_ms {self.timeout_s * 1000:.0f}"
                        )))  # fmt: skip
                        continue
                    live.append(it)
                if live:
                    try:
                        self._run(replica, live, out, batches)
                    except Exception as e:  # e.g. MemoryError concatenating: each request still gets an answer
                        log.exception("model %r: batch of %d requests failed", self.config.name, len(live))
                        answered = {id(it) for it, _ in out}
                        out.extend((it, self._error(e)) for it in live if id(it) not in answered)
            finally:
                with self._cond:
                    self._running -= 1
                    self._running_rows -= sum(it.rows for it in batch)
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(self._deliver, out, batches, len(self._queue))

    def _retired(self, replica: Replica) -> None:
        """A retiring replica's thread, after its last batch: close it and leave the executor."""
        if not replica.retiring:
            return
        with contextlib.suppress(Exception):
            replica.close()
        with self._cond:
            if replica in self.replicas:
                self.replicas.remove(replica)
            self._threads.pop(replica.id, None)

    def _run(
        self, replica: Replica, items: list[_Item], out: list[tuple[_Item, InferResult | BaseException]],
        batches: list[tuple[int, float]],
    ) -> None:  # fmt: skip
        """Run one batch on ``replica``; append each request's result or error to ``out`` and (rows, seconds)
        of each successful model call to ``batches``. Requests of a lost replica are retried once elsewhere."""
        t0 = time.monotonic()
        results = replica.run([it.inputs for it in items], items[0].parameters, batches, self.batching)
        compute = time.monotonic() - t0
        rows = sum(it.rows for it in items)
        self._row_s += 0.25 * (compute / max(1, rows) - self._row_s)
        self._batch_s += 0.25 * (compute - self._batch_s)
        batch_rows = batches[-1][0] if batches else rows
        batch_s = batches[-1][1] if batches else compute
        retry: list[_Item] = []
        for it, res in zip(items, results, strict=True):
            if isinstance(res, ReplicaLost):
                alone = len(items) == 1 and res.suspect  # it may well be what killed the replica
                if not it.retried and not alone and any(r.ready and r is not replica for r in self.replicas):
                    it.retried = True
                    it.key = ("retry", id(it))  # alone: a request that kills its replica must not take others along
                    retry.append(it)
                    continue
                out.append((it, res))
            elif isinstance(res, BaseException):
                out.append((it, res))
            else:
                out.append((it, InferResult(res, t0 - it.enqueued, batch_s, batch_rows)))
        if retry:
            self.retried += len(retry)
            log.warning("model %r: retrying %d request(s) of lost replica %s", self.config.name, len(retry), replica.id)
            with self._cond:
                self._queue.extendleft(reversed(retry))
                self._cond.notify_all()

    def _deliver(
        self, out: list[tuple[_Item, InferResult | BaseException]], batches: list[tuple[int, float]], depth: int
    ) -> None:
        """On the event loop: statistics, metrics and every request's answer of one batch."""
        # Triton semantics: execution_count / inference_count / batch stats count successful executions only
        # (a failed batch is retried request by request, and counting it too would double its rows).
        for rows, compute in batches:
            self.stats.record_batch(rows, compute)
            if self.observer:
                self.observer.batch(rows, compute)
        now = time.monotonic()
        for it, result in out:
            if isinstance(result, InferResult):
                self.stats.queue.add(result.queue_s)
                self.stats.compute_infer.add(result.compute_s)
                self.stats.success.add(now - it.enqueued)
                if not it.future.done():
                    it.future.set_result(result)
            else:
                self.stats.fail.add(now - it.enqueued)
                if not it.future.done():
                    it.future.set_exception(result)
        if self.observer:
            self.observer.queue_depth(depth)

    def _error(self, error: BaseException) -> BaseException:
        if isinstance(error, AiaasError):
            return error
        return InferenceError(f"model {self.config.name!r} failed: {type(error).__name__}: {error}")
