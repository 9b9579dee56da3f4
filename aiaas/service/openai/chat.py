"""``/v1/chat/completions``: messages rendered through the model's chat template, text out, whole or streamed
as ``chat.completion.chunk`` events."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from aiaas.errors import InvalidInput
from aiaas.llm.base import TokenOut
from aiaas.llm.text import FALLBACK_STOP, Detokenizer, content_text, render_chat
from aiaas.service.governance import Governance, Principal
from aiaas.service.metrics import Metrics
from aiaas.service.openai import generation as g
from aiaas.service.openai.admission import Meter, admit
from aiaas.service.openai.models import ModelsServing
from aiaas.types import openai as oa


def chat_logprobs(items: list[tuple[TokenOut, str]], detok: Detokenizer) -> oa.ChoiceLogprobs:
    content = []
    for t, text in items:
        tops = [(detok.token_text(i), v) for i, v in (t.top or [])]
        top = [oa.TopLogprob(token=s, logprob=v, bytes=list(s.encode())) for s, v in tops]
        content.append(
            oa.TokenLogprob(
                token=text,
                logprob=t.logprob if t.logprob is not None else 0.0,
                bytes=list(text.encode()),
                top_logprobs=top,
            )
        )
    return oa.ChoiceLogprobs(content=content)


def _refuse_unsupported(req: oa.ChatCompletionRequest) -> None:
    g.refuse_unsupported(req)
    if req.tools:
        raise InvalidInput("tools are not supported by this server", param="tools")
    if req.response_format is not None and req.response_format.type != "text":
        raise InvalidInput(
            f"response_format {req.response_format.type!r} is not supported; use 'text'", param="response_format"
        )
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidInput("top_logprobs requires logprobs: true", param="top_logprobs")


class ChatServing:
    def __init__(self, models: ModelsServing, governance: Governance, metrics: Metrics) -> None:
        self.models = models
        self.governance = governance
        self.metrics = metrics

    async def create(
        self, principal: Principal, req: oa.ChatCompletionRequest
    ) -> oa.ChatCompletionResponse | g.StreamResult:
        _refuse_unsupported(req)
        vr, engine = self.models.llm(principal, req.model)
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": content_text(m.content)}
            for m in req.messages
        ]
        prompt_ids, fallback = render_chat(engine.tokenizer, messages)
        asked = req.max_completion_tokens or req.max_tokens
        max_tokens = asked or max(1, min(engine.default_max_tokens, engine.max_model_len - len(prompt_ids)))
        g.check_length(engine, len(prompt_ids), max_tokens, "messages")
        stop = req.stop_list() + (FALLBACK_STOP if fallback else [])
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        choices = [
            g.Choice(
                j, prompt_ids, g.sampling(req, max_tokens, logprobs, j), Detokenizer(engine.tokenizer, prompt_ids, stop)
            )
            for j in range(req.n)
        ]
        meter = await admit(self.governance, self.metrics, principal, vr, req.model, "openai.chat", len(prompt_ids))
        await g.start(engine, choices, meter)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return g.StreamResult(
                g.stream(meter, choices, self._chunks(req, meter, choices, rid, created)), dict(meter.admission.headers)
            )
        await g.collect(meter, choices)
        return oa.ChatCompletionResponse(
            id=rid,
            created=created,
            model=req.model,
            choices=[
                oa.ChatChoice(
                    index=c.index,
                    message=oa.AssistantMessage(content="".join(c.text)),
                    logprobs=chat_logprobs(c.logprobs, c.detok) if c.params.logprobs is not None else None,
                    finish_reason=c.finish,
                )
                for c in choices
            ],
            usage=g.usage(len(prompt_ids), choices),
        )

    @staticmethod
    async def _chunks(
        req: oa.ChatCompletionRequest, meter: Meter, choices: list[g.Choice], rid: str, created: int
    ) -> AsyncIterator[bytes]:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(choices_: list[oa.ChunkChoice], usage: oa.Usage | None = None) -> bytes:
            body = oa.ChatCompletionChunk(id=rid, created=created, model=req.model, choices=choices_, usage=usage)
            if include_usage or usage is not None:
                return g.sse(body)
            return b"data: " + body.model_dump_json(exclude={"usage"}).encode() + b"\n\n"

        for c in choices:
            yield chunk([oa.ChunkChoice(index=c.index, delta=oa.Delta(role="assistant", content=""))])
        async for ev in g.events(choices, meter):
            lp = None
            if ev.choice.params.logprobs is not None:
                d = ev.choice.detok
                lp = chat_logprobs([(t, d.token_text(t.token_id)) for t in ev.tokens], d)
            if ev.text or lp is not None:
                yield chunk([oa.ChunkChoice(index=ev.choice.index, delta=oa.Delta(content=ev.text), logprobs=lp)])
            if ev.finish is not None:
                yield chunk([oa.ChunkChoice(index=ev.choice.index, delta=oa.Delta(), finish_reason=ev.finish)])
        if include_usage:
            yield chunk([], g.usage(meter.prompt_tokens, choices))
