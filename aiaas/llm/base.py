"""The engine interface every LLM backend implements, and the values that cross it.

An engine turns prompt token ids plus sampling parameters into a stream of generated tokens; everything
textual (chat templates, incremental detokenization, stop strings, the OpenAI wire format) lives above it,
in ``aiaas.llm.text`` and ``aiaas.service.openai``. So a second backend -- llama.cpp through
llama-cpp-python, say -- only has to implement ``Engine``: ``tokenizer`` (encode/decode/chat template),
``generate`` (an async iterator of token steps that stops the sequence when the consumer closes it), and the
admission bounds (``max_model_len``, back-pressure by raising ``ServiceUnavailable``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class SamplingParams:
    """Per-sequence generation settings (OpenAI's, with its defaults; temperature 0 = greedy)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None  # seeded sequences are reproducible whatever else is in the batch
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None  # None: none; k >= 0: the chosen token's logprob plus the k most likely
    ignore_eos: bool = False
    stop_token_ids: frozenset[int] = frozenset()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-5

    @property
    def penalised(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0


@dataclass(slots=True)
class TokenOut:
    token_id: int
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None  # (token id, logprob), most likely first


@dataclass(slots=True)
class Step:
    """What one await of ``Engine.generate`` yields: the tokens produced since the last yield, and the reason
    the sequence ended once it has ("stop": end-of-sequence token, "length": max_tokens or context full)."""

    tokens: list[TokenOut]
    finish_reason: str | None = None


@dataclass(slots=True)
class EngineStats:
    running: int = 0  # sequences in the running batch
    waiting: int = 0  # admitted to the engine, not yet prefilled
    tokens_reserved: int = 0  # prompt + max_tokens of running sequences
    steps: int = 0  # decode steps run
    generated: int = 0  # tokens generated since start
    cancelled: int = 0  # sequences stopped by their consumer
    extra: dict[str, Any] = field(default_factory=dict)


class Tokenizer(Protocol):
    """What the text layer needs from a tokenizer (a transformers tokenizer satisfies it)."""

    eos_token_id: int | None
    chat_template: str | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class Generation(ABC):
    """One queued sequence: an async iterator of ``Step`` s. ``cancel`` (or ``aclose``, or dropping out of an
    ``async for``) stops the sequence and frees its slot before the engine's next decode step."""

    def __aiter__(self) -> AsyncIterator[Step]:
        return self

    @abstractmethod
    async def __anext__(self) -> Step: ...

    @abstractmethod
    def cancel(self) -> None: ...

    async def aclose(self) -> None:
        self.cancel()


class Engine(ABC):
    """One loaded LLM: a tokenizer, a context length, and continuous-batching generation."""

    tokenizer: Tokenizer
    max_model_len: int
    default_max_tokens: int = 1024  # for chat requests that set no max_tokens
    add_bos: bool = True  # whether encoding a prompt adds the tokenizer's special prefix (BOS)

    @abstractmethod
    def start(self) -> None:
        """Start the scheduler (thread); called once after construction."""

    @abstractmethod
    def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        """Queue a sequence now and return its token stream. Raises at once -- before any response is sent --
        ``ServiceUnavailable`` (with Retry-After) when the engine's waiting queue is full and ``InvalidInput``
        when the prompt cannot fit."""

    @abstractmethod
    def stats(self) -> EngineStats: ...

    @abstractmethod
    def close(self) -> None:
        """Stop the scheduler; sequences still running end with finish_reason "abort"."""
