"""What the text-generation families share (completions, chat, and the V2 gRPC text stream): request checks,
sampling parameters, starting sequences on the engine, merging the token steps of ``n`` choices into text
increments, the units/minute cap during generation, and the server-sent-event body with its metering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from aiaas.errors import AiaasError, InferenceError, InvalidInput
from aiaas.llm.base import Engine, Generation, SamplingParams, TokenOut
from aiaas.llm.text import Detokenizer
from aiaas.service.governance import Admission
from aiaas.service.openai.admission import Meter, units_refusal
from aiaas.types import openai as oa

DONE = b"data: [DONE]\n\n"  # the last line of every OpenAI event stream


@dataclass(slots=True)
class StreamResult:
    """A server-sent-event body (``data: ...\\n\\n`` lines, ending ``data: [DONE]``) and its headers."""

    body: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Choice:
    """One sequence being generated: its prompt, sampling, detokenizer, and what it produced so far."""

    index: int
    prompt_ids: list[int]
    params: SamplingParams
    detok: Detokenizer
    gen: Generation | None = None
    tokens: int = 0
    finish: str | None = None
    text: list[str] = field(default_factory=list)
    logprobs: list[tuple[TokenOut, str]] = field(default_factory=list)


@dataclass(slots=True)
class Event:
    """One token step of one choice, as a text increment."""

    choice: Choice
    text: str
    tokens: list[TokenOut]
    finish: str | None


def sse(obj: Any) -> bytes:
    data = obj.model_dump_json() if hasattr(obj, "model_dump_json") else orjson.dumps(obj).decode()
    return b"data: " + data.encode() + b"\n\n"


def refuse_unsupported(req: oa.CompletionRequest | oa.ChatCompletionRequest) -> None:
    if req.logit_bias:
        raise InvalidInput("logit_bias is not supported", param="logit_bias")
    if req.stream_options is not None and not req.stream:
        raise InvalidInput("stream_options is only allowed with stream: true", param="stream_options")
    if len(req.stop_list()) > 4:
        raise InvalidInput("at most 4 stop sequences are allowed", param="stop")


def sampling(
    req: oa.CompletionRequest | oa.ChatCompletionRequest,
    max_tokens: int,
    logprobs: int | None,
    i: int,
    stop_ids: frozenset[int] = frozenset(),
) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=max(req.top_k or 0, 0),
        seed=None if req.seed is None else req.seed + i,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        logprobs=logprobs,
        ignore_eos=req.ignore_eos,
        stop_token_ids=stop_ids,
    )


def check_length(engine: Engine, prompt_len: int, max_tokens: int, what: str) -> None:
    if prompt_len + max_tokens > engine.max_model_len:
        raise InvalidInput(
            f"This model's maximum context length is {engine.max_model_len} tokens. However, you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in the {what}, {max_tokens} in the completion). "
            "Please reduce the length of the prompt or the completion.",
            param="max_tokens" if prompt_len < engine.max_model_len else what,
            code="context_length_exceeded",
        )


def usage(prompt_tokens: int, choices: list[Choice]) -> oa.Usage:
    completion = sum(c.tokens for c in choices)
    return oa.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion)


async def start(engine: Engine, choices: list[Choice], meter: Meter) -> None:
    """Queue every choice on the engine, or none (a refusal finishes the admission with its status)."""
    try:
        for c in choices:
            c.gen = engine.generate(c.prompt_ids, c.params)
    except BaseException as e:
        for c in choices:
            if c.gen is not None:
                c.gen.cancel()
        if isinstance(e, AiaasError):
            await meter.finish(e.status_code, 0)
        raise


async def events(choices: list[Choice], meter: Meter) -> AsyncIterator[Event]:
    """Token steps of every choice, merged, as text increments; stops every choice at the first error."""
    prompt_tokens, cap = meter.prompt_tokens, meter.cap
    try:
        if len(choices) == 1:
            c = choices[0]
            assert c.gen is not None
            async for step in c.gen:
                meter.t_first = meter.t_first or time.perf_counter()
                ev = absorb(c, step.tokens, step.finish_reason)
                yield ev
                check_cap(choices, prompt_tokens, cap, meter.admission)
                if ev.finish is not None:
                    break
            return
        async for ev in _merged(choices, meter, prompt_tokens, cap):
            yield ev
    finally:
        for c in choices:
            if c.gen is not None:
                c.gen.cancel()


async def _merged(choices: list[Choice], meter: Meter, prompt_tokens: int, cap: float | None) -> AsyncIterator[Event]:
    """The steps of several choices in the order they come."""
    pending: dict[asyncio.Future[Any], Choice] = {}
    for c in choices:
        assert c.gen is not None
        pending[asyncio.ensure_future(c.gen.__anext__())] = c
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                c = pending.pop(fut)
                try:
                    step = fut.result()
                except StopAsyncIteration:
                    continue
                meter.t_first = meter.t_first or time.perf_counter()
                ev = absorb(c, step.tokens, step.finish_reason)
                yield ev
                check_cap(choices, prompt_tokens, cap, meter.admission)
                if ev.finish is None:
                    assert c.gen is not None
                    pending[asyncio.ensure_future(c.gen.__anext__())] = c
    finally:
        for fut in pending:
            fut.cancel()


def absorb(c: Choice, tokens: list[TokenOut], finish: str | None) -> Event:
    c.tokens += len(tokens)
    rel = c.detok.add([t.token_id for t in tokens], final=finish is not None)
    if rel.stopped:
        finish = "stop"
        if c.gen is not None:
            c.gen.cancel()
    if finish == "abort":
        raise InferenceError("the model was unloaded during generation; retry")
    c.finish = finish
    c.text.append(rel.text)
    if c.params.logprobs is not None:
        c.logprobs.extend((t, c.detok.token_text(t.token_id)) for t in tokens)
    return Event(c, rel.text, tokens, finish)


def check_cap(choices: list[Choice], prompt_tokens: int, cap: float | None, admission: Admission) -> None:
    if cap is None or all(c.finish is not None for c in choices):
        return
    used = prompt_tokens + sum(c.tokens for c in choices)
    if used >= cap:
        raise units_refusal(admission, used + 1, cap, during=True)


async def stream(meter: Meter, choices: list[Choice], chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The event-stream body: ``chunks``, an error as the last data chunk, ``[DONE]``; metered at the end."""
    status = 200
    try:
        async for chunk in chunks:
            yield chunk
    except AiaasError as e:
        status = e.status_code
        yield sse(e.to_openai())
    except Exception as e:  # anything else still ends the stream in OpenAI's shape
        status = 500
        yield sse(InferenceError(f"generation failed: {type(e).__name__}").to_openai())
    except BaseException:  # the client went away (cancellation): stop, meter what was produced
        status = 499
        raise
    finally:
        await meter.finish(status, sum(c.tokens for c in choices))
    yield DONE


async def collect(meter: Meter, choices: list[Choice]) -> None:
    """Run every choice to its end (a whole, non-streamed response); metered at the end."""
    status = 500
    try:
        async for _ in events(choices, meter):
            pass
        status = 200
    except AiaasError as e:
        status = e.status_code
        raise
    finally:
        await meter.finish(status, sum(c.tokens for c in choices))
