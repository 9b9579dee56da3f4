"""The executor threads: one per replica, each gathering a batch, running it and answering its requests.

Each replica has its own thread that gathers a batch (``policy.BatchPolicy`` decides how big and how long to
wait), runs the model and hands the answers back to the event loop with one callback per batch. The thread never
waits for the event loop to start its next batch: under load the loop is busy parsing requests, and a worker
coroutine resumed behind that work would leave its cores idle for milliseconds after every batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque

from aiaas.batching.items import InferResult, Item
from aiaas.batching.policy import BatchPolicy, take_compatible
from aiaas.batching.stats import BatchObserver, ModelStats
from aiaas.errors import AiaasError, DeadlineExceeded, InferenceError
from aiaas.placement.base import Replica, ReplicaLost
from aiaas.types.model_config import ModelConfig

log = logging.getLogger("aiaas.batching")
Answers = list[tuple[Item, InferResult | BaseException]]


class ReplicaThreads:
    """The thread half of ``ModelExecutor`` (batcher.py), which owns the state declared here."""

    config: ModelConfig
    policy: BatchPolicy
    replicas: list[Replica]
    observer: BatchObserver | None
    stats: ModelStats
    retried: int
    timeout_s: float
    _queue: deque[Item]
    _cond: threading.Condition
    _in_system: int
    _running: int
    _running_rows: int
    _stopping: bool
    _threads: dict[str, threading.Thread]
    _loop: asyncio.AbstractEventLoop

    def _spawn(self, replica: Replica) -> None:
        t = threading.Thread(
            target=self._thread_main,
            args=(replica,),
            name=f"aiaas-{self.config.name or 'model'}-{replica.id}",
            daemon=True,
        )
        self._threads[replica.id] = t
        t.start()

    def _collect(self, replica: Replica) -> list[Item] | None:
        """Take the first waiting request and every compatible one behind it, waiting for company if useful.
        Runs on a replica's thread; returns None when the executor stops or the replica retires."""
        with self._cond:
            while not self._queue or replica.retiring:
                if self._stopping or replica.retiring:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, rows = [first], first.rows
            if self.policy.batching:
                rows = self._gather(first, batch, rows)
            self._running += 1
            self._running_rows += rows
            return batch

    def _gather(self, first: Item, batch: list[Item], rows: int) -> int:
        """Called with ``_cond`` held: extend ``batch`` with compatible waiting requests; returns its rows."""
        idle = sum(r.ready for r in self.replicas) - self._running  # this worker included; a running one does not count
        crowd = max(1, self._in_system - self._running_rows)
        cap, target, expect, wait_s = self.policy.plan(rows, self._queue, idle, crowd)
        give_up = time.monotonic() + wait_s
        while rows < target:
            for it in take_compatible(self._queue, first.key, cap - rows):
                batch.append(it)
                rows += it.rows
            remaining = give_up - time.monotonic()
            if rows >= target or len(batch) >= expect or remaining <= 0 or self._stopping:
                break
            self._cond.wait(remaining)
        return rows

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
            out: Answers = []  # each request's answer
            batches: list[tuple[int, float]] = []  # (rows, seconds) of each successful model call
            try:
                live = self._expire(batch, out)
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

    def _expire(self, batch: list[Item], out: Answers) -> list[Item]:
        """The requests of ``batch`` still worth running: a client that went away is skipped, a request past its
        deadline answered with DeadlineExceeded."""
        now = time.monotonic()
        live: list[Item] = []
        for it in batch:
            if it.future.done():  # the client went away (a racy read is fine: at worst one wasted row)
                continue
            if now > it.deadline:
                out.append(
                    (
                        it,
                        DeadlineExceeded(
                            f"request waited {1000 * (now - it.enqueued):.0f} ms in the queue of model "
                            f"{self.config.name!r}, past its timeout_ms {self.timeout_s * 1000:.0f}"
                        ),
                    )
                )
                continue
            live.append(it)
        return live

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

    def _run(self, replica: Replica, items: list[Item], out: Answers, batches: list[tuple[int, float]]) -> None:
        """Run one batch on ``replica``; append each request's result or error to ``out`` and (rows, seconds)
        of each successful model call to ``batches``. Requests of a lost replica are retried once elsewhere."""
        t0 = time.monotonic()
        results = replica.run([it.inputs for it in items], items[0].parameters, batches, self.policy.batching)
        compute = time.monotonic() - t0
        rows = sum(it.rows for it in items)
        self.policy.ran(rows, compute)
        batch_rows = batches[-1][0] if batches else rows
        batch_s = batches[-1][1] if batches else compute
        retry: list[Item] = []
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

    def _deliver(self, out: Answers, batches: list[tuple[int, float]], depth: int) -> None:
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
