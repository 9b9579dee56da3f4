"""One prompt's generation as a stream of text increments, for transports without OpenAI's wire format (the
KServe V2 gRPC stream serves an LLM as a Triton "decoupled" model: one response per increment).

It is a streamed completion underneath -- the same visibility check, admission, token metering, units/minute cap
during generation, and cancellation (closing the iterator stops the sequence before the engine's next step) --
so governance cannot differ between the OpenAI routes and this one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pydantic

from aiaas.errors import AiaasError, InvalidInput
from aiaas.llm.text import Detokenizer
from aiaas.service.openai import OpenAIService
from aiaas.service.openai import generation as g
from aiaas.service.openai.admission import Meter, admit
from aiaas.service.openai.completions import prompt_ids
from aiaas.types import openai as oa

# V2 request parameters a stream may set (OpenAI's completion sampling names); others are refused by name
SAMPLING_KEYS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "ignore_eos",
    "presence_penalty",
    "frequency_penalty",
)


@dataclass(slots=True)
class TextStream:
    """Increments ``(text, finish_reason)``; ``finish_reason`` is set on the last one ("stop" or "length")."""

    events: AsyncIterator[tuple[str, str | None]]
    version: str
    headers: dict[str, str] = field(default_factory=dict)


def is_llm(oai: OpenAIService, name: str) -> bool:
    """Whether ``name`` is a loaded text-generation model (without any visibility check: callers then go
    through ``start`` which checks, so an invisible model still answers exactly like a missing one)."""
    return oai.models.is_llm(name)


async def start(
    oai: OpenAIService,
    principal: Any,
    model: str,
    prompt: str,
    params: dict[str, Any],
    endpoint: str = "v2.grpc.stream",
) -> TextStream:
    """Admit and start one generation; raises (before any increment) what a streamed completion would."""
    unknown = sorted(set(params) - set(SAMPLING_KEYS))
    if unknown:
        raise InvalidInput(f"unknown generation parameter(s) {unknown}; allowed: {list(SAMPLING_KEYS)}")
    try:
        req = oa.CompletionRequest(model=model, prompt=prompt, **params)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        raise InvalidInput(f"parameter {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    vr, engine = oai.models.llm(principal, model)
    ids = prompt_ids(engine, prompt)[0]
    max_tokens = req.max_tokens or 16
    g.check_length(engine, len(ids), max_tokens, "prompt")
    choice = g.Choice(0, ids, g.sampling(req, max_tokens, None, 0), Detokenizer(engine.tokenizer, ids, req.stop_list()))
    meter = await admit(oai.governance, oai.metrics, principal, vr, model, endpoint, len(ids))
    await g.start(engine, [choice], meter)
    return TextStream(_events(meter, choice), str(vr.version), dict(meter.admission.headers))


async def _events(meter: Meter, choice: g.Choice) -> AsyncIterator[tuple[str, str | None]]:
    status = 500
    try:
        async for ev in g.events([choice], meter):
            yield ev.text, ev.finish
        status = 200
    except AiaasError as e:
        status = e.status_code
        raise
    except BaseException:  # the client cancelled (or the stream was closed): meter what was produced
        status = 499
        raise
    finally:
        await meter.finish(status, choice.tokens)
