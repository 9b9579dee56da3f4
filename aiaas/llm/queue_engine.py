"""The request side every engine shares: a waiting queue guarded by a condition, one scheduler thread, admission
checks at ``generate`` (prompt fits, queue not full), cancellation, and shutdown that ends open streams with
finish_reason "abort". An engine subclasses ``QueueEngine`` and writes ``_loop`` (its scheduler) and ``stats``."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from typing import Any

import torch

from aiaas.errors import ServiceUnavailable
from aiaas.llm.base import Engine, EngineStats, Generation, SamplingParams, Step
from aiaas.llm.sampling import RowState
from aiaas.llm.seq import QueuedGeneration, Seq, check_prompt, check_room, deliver


class QueueEngine(Engine):
    vocab: int
    max_waiting: int
    thread_name = "aiaas-llm-engine"

    def _init_queue(self) -> None:
        self._cv = threading.Condition()
        self._waiting: deque[Seq] = deque()
        self._running: list[Seq] = []
        self._reserved = 0
        self._ids = itertools.count(1)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._stats = EngineStats()

    def _loop(self) -> None:
        raise NotImplementedError

    def _row_device(self) -> Any:
        return torch.device("cpu")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()

    def _shutdown(self) -> None:
        """Stop the scheduler thread and end every sequence still queued or running with "abort"."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._cv:
            left = list(self._waiting) + self._running
            self._waiting.clear()
            self._running = []
        deliver([(s, Step([], "abort")) for s in left])

    def _wait_for_work_locked(self) -> bool:
        """Block (lock held) until there is something to do; False once the engine is stopping."""
        while not self._stop and not self._waiting and not self._running:
            self._cv.wait(timeout=1.0)
        return not self._stop

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        if self._stop or self._thread is None:
            raise ServiceUnavailable("the LLM engine is not running", retry_after=5)
        check_prompt(prompt_ids, params, self.max_model_len)
        row = RowState.create(params, self.vocab, self._row_device())
        seq = Seq(next(self._ids), list(prompt_ids), params, row, asyncio.get_running_loop())
        with self._cv:
            check_room(len(self._running), len(self._waiting), self.max_waiting)
            self._waiting.append(seq)
            self._cv.notify()
        return QueuedGeneration(self, seq)

    def _cancel(self, seq: Seq) -> None:
        with self._cv:
            seq.cancelled = True
            self._cv.notify()
