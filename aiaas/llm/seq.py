"""One queued sequence as both sides of an engine see it: the scheduler thread's record (``Seq``) and the
consumer's async iterator (``QueuedGeneration``), joined by an asyncio queue fed with ``put_all`` through one
``call_soon_threadsafe`` per event loop per step. Shared by every engine (torch, llama.cpp)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from aiaas.errors import InvalidInput, ServiceUnavailable
from aiaas.llm.base import Generation, SamplingParams, Step
from aiaas.llm.sampling import RowState


class Cancellable(Protocol):
    def _cancel(self, seq: Seq) -> None: ...


class Seq:
    __slots__ = (
        "cancelled",
        "enqueued",
        "fed",
        "finished",
        "generated",
        "id",
        "last",
        "loop",
        "out",
        "params",
        "prompt",
        "queue",
        "reserve",
        "row",
        "slot",
    )

    def __init__(
        self, sid: int, prompt: list[int], params: SamplingParams, row: RowState, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.id = sid
        self.prompt = prompt
        self.params = params
        self.row = row
        self.loop = loop
        self.queue: asyncio.Queue[Step | BaseException] = asyncio.Queue()
        self.reserve = len(prompt) + params.max_tokens
        self.generated = 0
        self.last = -1  # last sampled token, not yet in the cache
        self.finished = False  # set on the loop side once the final Step was taken
        self.cancelled = False
        self.enqueued = time.monotonic()
        self.slot = -1  # the engine's cache row / sequence id, where it has one
        self.out: list[int] = []  # sampled token ids, in order (engines that keep cached prefixes use them)
        self.fed = 0  # prompt tokens already in the cache (chunked prefill, prefix reuse)


class QueuedGeneration(Generation):
    def __init__(self, engine: Cancellable, seq: Seq) -> None:
        self._engine = engine
        self._seq = seq

    async def __anext__(self) -> Step:
        seq = self._seq
        if seq.finished:
            raise StopAsyncIteration
        try:
            item = await seq.queue.get()
        except BaseException:
            self.cancel()
            raise
        if isinstance(item, BaseException):
            seq.finished = True
            raise item
        tokens, finish = list(item.tokens), item.finish_reason
        while finish is None and not seq.queue.empty():  # a slow consumer takes what has piled up at once
            nxt = seq.queue.get_nowait()
            if isinstance(nxt, BaseException):
                seq.finished = True
                raise nxt
            tokens.extend(nxt.tokens)
            finish = nxt.finish_reason
        if finish is not None:
            seq.finished = True
        return Step(tokens, finish)

    def cancel(self) -> None:
        if not self._seq.finished:
            self._seq.finished = True
            self._engine._cancel(self._seq)


def put_all(events: list[tuple[Seq, Step | BaseException]]) -> None:
    for seq, ev in events:
        seq.queue.put_nowait(ev)


def deliver(events: list[tuple[Seq, Step | BaseException]]) -> None:
    """Hand each step to its request's queue: one thread hop per event loop per decode step."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Seq, Step | BaseException]]] = {}
    for seq, ev in events:
        by_loop.setdefault(seq.loop, []).append((seq, ev))
    for loop, evs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
            loop.call_soon_threadsafe(put_all, evs)


def check_prompt(prompt_ids: list[int], params: SamplingParams, max_model_len: int) -> None:
    """Refuse a prompt that cannot fit (before any response is sent); clip max_tokens to the room left."""
    if not prompt_ids:
        raise InvalidInput("the prompt is empty", param="prompt")
    room = max_model_len - len(prompt_ids)
    if room < 1:
        raise InvalidInput(
            f"the prompt has {len(prompt_ids)} tokens; this model's context is {max_model_len} tokens",
            param="prompt",
            code="context_length_exceeded",
        )
    if params.max_tokens > room:
        params.max_tokens = room


def check_room(running: int, waiting: int, max_waiting: int) -> None:
    """Back-pressure: 503 + Retry-After once the waiting queue is full (call with the engine's lock held)."""
    if waiting >= max_waiting:
        raise ServiceUnavailable(
            f"the model is at capacity: {running} sequences running and {waiting} waiting; retry later",
            retry_after=max(1.0, waiting * 0.05),
        )
