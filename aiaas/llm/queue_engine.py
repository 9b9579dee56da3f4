"""The request side every engine shares: a waiting queue guarded by a condition, one scheduler thread, admission
checks at ``generate`` (prompt fits, queue not full), cancellation, and shutdown that ends open streams with
finish_reason "abort". An engine subclasses ``QueueEngine`` and writes ``_loop`` (its scheduler) and ``stats``.

``EngineLimits`` is what every engine is sized by (admission bounds, chunked prefill, decode threads): one
value, parsed once from ``model.yaml`` ``parameters`` by ``aiaas.runtime.llm`` and handed to the engine."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from aiaas.errors import ServiceUnavailable
from aiaas.llm.base import Engine, EngineStats, Generation, SamplingParams, Step
from aiaas.llm.sampling import RowState
from aiaas.llm.seq import QueuedGeneration, Seq, check_prompt, check_room, deliver
from aiaas.llm.threads import ThreadPolicy


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """Admission bounds, prefill chunking and decode threads of one engine (``model.yaml`` ``parameters``)."""

    max_num_seqs: int = 16  # sequences decoded together (the running batch)
    max_num_tokens: int = 16384  # prompt + max_tokens reserved by running sequences (llamacpp: its KV cache size)
    max_waiting: int = 256  # queued beyond the running batch; more answers 503 + Retry-After
    max_model_len: int | None = None  # context length (None: the model's own)
    default_max_tokens: int = 1024  # for chat requests that set no max_tokens
    threads: int = 0  # decode threads while few streams run (0 = every core)
    busy_threads: int = 0  # decode threads from busy_streams sequences on (0 = one fewer than threads)
    busy_streams: int = 4  # sequences (running + waiting) from which busy_threads apply (0 = never)
    max_prefill_tokens: int = 512  # prompt tokens read per scheduler step (chunked prefill)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "max_model_len":
                continue
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{f.name} must be an integer, got {v!r}")
            low = 0 if f.name in ("threads", "busy_threads", "busy_streams") else 1
            if v < low:
                raise ValueError(f"{f.name} must be >= {low}, got {v}")

    @classmethod
    def parse(cls, params: Mapping[str, Any], base: EngineLimits | None = None) -> EngineLimits:
        """The limits named in ``params`` (other keys ignored) over ``base`` (default: the class defaults)."""
        given = {f.name: params[f.name] for f in fields(cls) if f.name in params}
        return replace(base or cls(), **given)

    def thread_policy(self) -> ThreadPolicy:
        return ThreadPolicy.create(self.threads, self.busy_threads, self.busy_streams)


class QueueEngine(Engine):
    vocab: int
    thread_name = "aiaas-llm-engine"

    def _init_queue(self, limits: EngineLimits, model_len: int) -> None:
        """Apply ``limits`` (``model_len``: the model's own context) and set up the queue."""
        self.limits = limits
        self.max_model_len = min(model_len, limits.max_model_len) if limits.max_model_len else model_len
        self.max_num_seqs = limits.max_num_seqs
        self.max_num_tokens = max(limits.max_num_tokens, self.max_model_len)  # one full-length sequence always fits
        self.max_waiting = limits.max_waiting
        self.max_prefill_tokens = limits.max_prefill_tokens
        self.default_max_tokens = limits.default_max_tokens
        self.threads = limits.thread_policy()
        self._cv = threading.Condition()
        self._waiting: deque[Seq] = deque()
        self._running: list[Seq] = []
        self._prefilling: list[Seq] = []  # admitted, prompt not fully read yet (engines that keep them apart)
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
            left = list(self._waiting) + self._running + self._prefilling
            self._waiting.clear()
            self._running, self._prefilling = [], []
        deliver([(s, Step([], "abort")) for s in left])

    def _wait_for_work_locked(self) -> bool:
        """Block (lock held) until there is something to do; False once the engine is stopping."""
        while not self._stop and not self._waiting and not self._running and not self._prefilling:
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
