"""``/v1/completions``: prompts (text or token ids) in, text out, whole or streamed."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiaas.errors import InvalidInput
from aiaas.llm.base import Engine, TokenOut
from aiaas.llm.text import Detokenizer
from aiaas.service.governance import Governance, Principal
from aiaas.service.metrics import Metrics
from aiaas.service.openai import generation as g
from aiaas.service.openai.admission import Meter, admit
from aiaas.service.openai.models import ModelsServing
from aiaas.types import openai as oa


def prompt_ids(engine: Engine, prompt: Any) -> list[list[int]]:
    """The token ids of each prompt: a string, a list of strings, a list of ids or a list of id lists."""
    if isinstance(prompt, str):
        raw: list[Any] = [prompt]
    elif prompt and all(isinstance(x, int) for x in prompt):
        raw = [list(prompt)]
    else:
        raw = list(prompt)
    if not raw:
        raise InvalidInput("prompt must not be empty", param="prompt")
    out = []
    vocab = int(getattr(engine, "vocab", 1 << 31))
    for p in raw:
        if isinstance(p, str):
            ids = engine.tokenizer.encode(p, add_special_tokens=engine.add_bos)
        else:
            ids = list(p)
            if any(not (0 <= t < vocab) for t in ids):
                raise InvalidInput(f"prompt token ids must be in [0, {vocab})", param="prompt")
        if not ids:
            raise InvalidInput("prompt must not be empty", param="prompt")
        out.append(ids)
    return out


def completion_logprobs(items: list[tuple[TokenOut, str]], detok: Detokenizer) -> oa.CompletionLogprobs:
    lp = oa.CompletionLogprobs()
    pos = 0
    for t, text in items:
        lp.tokens.append(text)
        lp.token_logprobs.append(t.logprob)
        lp.top_logprobs.append({detok.token_text(i): v for i, v in t.top} if t.top is not None else None)
        lp.text_offset.append(pos)
        pos += len(text)
    return lp


class CompletionsServing:
    def __init__(self, models: ModelsServing, governance: Governance, metrics: Metrics) -> None:
        self.models = models
        self.governance = governance
        self.metrics = metrics

    async def create(self, principal: Principal, req: oa.CompletionRequest) -> oa.CompletionResponse | g.StreamResult:
        g.refuse_unsupported(req)
        if req.best_of is not None and req.best_of != req.n:
            raise InvalidInput("best_of other than n is not supported", param="best_of")
        if req.suffix:
            raise InvalidInput("suffix is not supported", param="suffix")
        vr, engine = self.models.llm(principal, req.model)
        prompts = prompt_ids(engine, req.prompt)
        max_tokens = req.max_tokens or 16
        for ids in prompts:
            g.check_length(engine, len(ids), max_tokens, "prompt")
        stop = req.stop_list()
        choices = [
            g.Choice(
                pi * req.n + j,
                ids,
                g.sampling(req, max_tokens, req.logprobs, j),
                Detokenizer(engine.tokenizer, ids, stop),
            )
            for pi, ids in enumerate(prompts)
            for j in range(req.n)
        ]
        prompt_tokens = sum(len(p) for p in prompts)
        meter = await admit(
            self.governance, self.metrics, principal, vr, req.model, "openai.completions", prompt_tokens
        )
        await g.start(engine, choices, meter)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        echo = {
            c.index: engine.tokenizer.decode(c.prompt_ids, skip_special_tokens=True) if req.echo else ""
            for c in choices
        }
        if req.stream:
            return g.StreamResult(
                g.stream(meter, choices, self._chunks(req, meter, choices, rid, created, echo)),
                dict(meter.admission.headers),
            )
        await g.collect(meter, choices)
        return oa.CompletionResponse(
            id=rid,
            created=created,
            model=req.model,
            choices=[
                oa.CompletionChoice(
                    index=c.index,
                    text=echo[c.index] + "".join(c.text),
                    logprobs=completion_logprobs(c.logprobs, c.detok) if c.params.logprobs is not None else None,
                    finish_reason=c.finish,
                )
                for c in choices
            ],
            usage=g.usage(prompt_tokens, choices),
        )

    @staticmethod
    async def _chunks(
        req: oa.CompletionRequest, meter: Meter, choices: list[g.Choice], rid: str, created: int, echo: dict[int, str]
    ) -> AsyncIterator[bytes]:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        for c in choices:
            if echo[c.index]:
                yield g.sse(
                    oa.CompletionResponse(
                        id=rid,
                        created=created,
                        model=req.model,
                        choices=[oa.CompletionChoice(index=c.index, text=echo[c.index])],
                    )
                )
        async for ev in g.events(choices, meter):
            if not ev.text and ev.finish is None and ev.choice.params.logprobs is None:
                continue
            lp = None
            if ev.choice.params.logprobs is not None:
                d = ev.choice.detok
                lp = completion_logprobs([(t, d.token_text(t.token_id)) for t in ev.tokens], d)
            chunk = oa.CompletionResponse(
                id=rid,
                created=created,
                model=req.model,
                choices=[
                    oa.CompletionChoice(index=ev.choice.index, text=ev.text, logprobs=lp, finish_reason=ev.finish)
                ],
            )
            yield g.sse(chunk)
        if include_usage:
            yield g.sse(
                oa.CompletionResponse(
                    id=rid, created=created, model=req.model, choices=[], usage=g.usage(meter.prompt_tokens, choices)
                )
            )
