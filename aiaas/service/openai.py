"""The OpenAI-compatible service, transport-free: models, completions, chat, embeddings and audio.

Text generation talks to the model's engine directly (``LLMModel.engine``) so tokens can stream; everything
else is an ordinary model called through the data plane, by convention:

* embedding model: input ``text`` BYTES [-1] -> output ``embedding`` FP32 [-1, D]
* speech recognizer: input ``audio`` BYTES [-1] (WAV bytes) -> output ``text`` BYTES [-1]
* speech synthesizer: input ``text`` BYTES [-1] -> output ``audio`` BYTES [-1] (WAV bytes)

Metering: a generation is admitted by governance before any token is produced (``openai.chat`` /
``openai.completions``) and finished with ``units_in`` = prompt tokens and ``units_out`` = completion tokens,
so units-per-minute limits and budgets count tokens. A units/minute limit also binds *during* a generation:
the stream stops when the tokens used reach what the limit had left at admission, with a 429 error (inside
the stream as its last data chunk).
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import orjson

from aiaas.errors import AiaasError, InferenceError, InvalidInput, NotFound, RateLimited
from aiaas.llm.base import Engine, Generation, SamplingParams, TokenOut
from aiaas.llm.text import FALLBACK_STOP, Detokenizer, content_text, render_chat
from aiaas.service import audio_formats
from aiaas.service.dataplane import DataPlane, _ref
from aiaas.service.governance import Admission, Governance, ModelRef, Outcome, Principal
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager, VersionRecord
from aiaas.types import openai as oa


@dataclass(slots=True)
class StreamResult:
    """A server-sent-event body (``data: ...\\n\\n`` lines, ending ``data: [DONE]``) and its headers."""

    body: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Choice:
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
class _Event:
    choice: _Choice
    text: str
    tokens: list[TokenOut]
    finish: str | None


class _Meter:
    """Finishes the admission exactly once, shielded from the cancellation of a disconnected client."""

    def __init__(self, governance: Governance, metrics: Metrics, admission: Admission, prompt_tokens: int) -> None:
        self.governance, self.metrics, self.admission = governance, metrics, admission
        self.prompt_tokens = prompt_tokens
        self.t0 = time.perf_counter()
        self.t_first: float | None = None  # when the first token came out (time to first token)
        self.done = False

    async def finish(self, status: int, completion_tokens: int) -> None:
        if self.done:
            return
        self.done = True
        elapsed = time.perf_counter() - self.t0
        with anyio.CancelScope(shield=True):
            await self.governance.finish(
                self.admission,
                Outcome(status=status, units_in=float(self.prompt_tokens), units_out=float(completion_tokens),
                        compute_s=elapsed),
            )  # fmt: skip
        m = self.admission.model
        self.metrics.request_done(m.name, m.version or "", "success" if status == 200 else str(status), elapsed, None)
        self.metrics.ops.llm_request(m.name, self.prompt_tokens, completion_tokens, self.t0, self.t_first,
                                     self.t0 + elapsed)  # fmt: skip


def _sse(obj: Any) -> bytes:
    data = obj.model_dump_json() if hasattr(obj, "model_dump_json") else orjson.dumps(obj).decode()
    return b"data: " + data.encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def _header_float(admission: Admission, name: str) -> float | None:
    value = admission.headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _remaining_units(admission: Admission) -> float | None:
    """Units the caller's units/minute limit had left at admission (None: no such limit)."""
    return _header_float(admission, "x-ratelimit-remaining-units")


def _units_refusal(admission: Admission, used: float, cap: float, during: bool) -> RateLimited:
    """429 with Retry-After: the time the bucket needs to refill what this request is short of."""
    per_minute = _header_float(admission, "x-ratelimit-limit-units") or 0.0
    short = max(used - cap, 1.0)
    retry = max(1, math.ceil(short * 60.0 / per_minute)) if per_minute > 0 else 60
    where = "ran out during generation" if during else "has too few tokens left for this prompt"
    headers = {k: v for k, v in admission.headers.items() if k.startswith("x-ratelimit-")}
    headers["Retry-After"] = str(retry)
    return RateLimited(
        f"rate limit exceeded: the tokens-per-minute limit {where} ({used:g} tokens needed, {cap:g} were left); "
        f"retry after {retry} s",
        code="rate_limit_exceeded", headers=headers,
    )  # fmt: skip


class OpenAIService:
    def __init__(self, models: ModelManager, governance: Governance, dataplane: DataPlane, metrics: Metrics) -> None:
        self.models = models
        self.governance = governance
        self.dataplane = dataplane
        self.metrics = metrics

    # -- models -----------------------------------------------------------------------------------
    def _visible(self, principal: Principal, name: str) -> None:
        rec = self.models.models.get(name)
        if rec is None or (rec.config is not None and not self.governance.can_see(principal, ModelRef(name, owner=rec.config.owner))):
            raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")

    def _card(self, name: str, vr: VersionRecord) -> oa.ModelCard:
        cfg = vr.config
        return oa.ModelCard(id=name, created=int(vr.loaded_at), owned_by=(cfg.owner if cfg and cfg.owner else "aiaas"),
                            task=cfg.task if cfg else None)  # fmt: skip

    def list_models(self, principal: Principal) -> oa.ModelList:
        cards = []
        for name in sorted(self.models.models):
            rec = self.models.models[name]
            vr = rec.latest_ready()
            if vr is None or rec.config is None:
                continue
            if not self.governance.can_see(principal, ModelRef(name, owner=rec.config.owner)):
                continue
            cards.append(self._card(name, vr))
        return oa.ModelList(data=cards)

    def get_model(self, principal: Principal, name: str) -> oa.ModelCard:
        self._visible(principal, name)
        vr = self.models.models[name].latest_ready()
        if vr is None:
            raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
        return self._card(name, vr)

    def _llm(self, principal: Principal, name: str) -> tuple[VersionRecord, Engine]:
        self._visible(principal, name)
        vr = self.models.resolve(name, None)
        instances = vr.executor.instances if vr.executor is not None else []
        engine = getattr(instances[0], "engine", None) if instances else None
        if not isinstance(engine, Engine):
            raise InvalidInput(f"model {name!r} is not a text-generation model (backend llm)", param="model")
        return vr, engine

    # -- shared generation machinery ------------------------------------------------------------------
    @staticmethod
    def _refuse_unsupported(req: oa.CompletionRequest | oa.ChatCompletionRequest) -> None:
        if req.logit_bias:
            raise InvalidInput("logit_bias is not supported", param="logit_bias")
        if req.stream_options is not None and not req.stream:
            raise InvalidInput("stream_options is only allowed with stream: true", param="stream_options")
        if len(req.stop_list()) > 4:
            raise InvalidInput("at most 4 stop sequences are allowed", param="stop")

    @staticmethod
    def _sampling(req: oa.CompletionRequest | oa.ChatCompletionRequest, max_tokens: int, logprobs: int | None,
                  i: int, stop_ids: frozenset[int] = frozenset()) -> SamplingParams:  # fmt: skip
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

    @staticmethod
    def _check_length(engine: Engine, prompt_len: int, max_tokens: int, what: str) -> None:
        if prompt_len + max_tokens > engine.max_model_len:
            raise InvalidInput(
                f"This model's maximum context length is {engine.max_model_len} tokens. However, you requested "
                f"{prompt_len + max_tokens} tokens ({prompt_len} in the {what}, {max_tokens} in the completion). "
                "Please reduce the length of the prompt or the completion.",
                param="max_tokens" if prompt_len < engine.max_model_len else what, code="context_length_exceeded",
            )  # fmt: skip

    async def _admit(self, principal: Principal, vr: VersionRecord, name: str, endpoint: str, prompt_tokens: int) -> _Meter:
        try:
            admission = await self.governance.admit(principal, _ref(vr, name), endpoint)
        except AiaasError as e:
            self.metrics.ops.refused(name, principal.tenant_id, e.status_code)
            raise
        meter = _Meter(self.governance, self.metrics, admission, prompt_tokens)
        cap = _remaining_units(admission)
        if cap is not None and prompt_tokens >= cap:  # units are post-paid: do not start what cannot finish
            meter.prompt_tokens = 0  # refused before any work: nothing is charged
            self.metrics.ops.refused(name, principal.tenant_id, 429)
            await meter.finish(429, 0)
            raise _units_refusal(admission, prompt_tokens + 1, cap, during=False)
        return meter

    def _start(self, engine: Engine, choices: list[_Choice]) -> None:
        try:
            for c in choices:
                c.gen = engine.generate(c.prompt_ids, c.params)
        except BaseException:
            for c in choices:
                if c.gen is not None:
                    c.gen.cancel()
            raise

    async def _events(self, choices: list[_Choice], meter: _Meter) -> AsyncIterator[_Event]:
        """Token steps of every choice, merged, as text increments; stops every choice at the first error."""
        prompt_tokens, cap = meter.prompt_tokens, _remaining_units(meter.admission)
        try:
            if len(choices) == 1:
                c = choices[0]
                assert c.gen is not None
                async for step in c.gen:
                    meter.t_first = meter.t_first or time.perf_counter()
                    ev = self._absorb(c, step.tokens, step.finish_reason)
                    yield ev
                    self._check_cap(choices, prompt_tokens, cap, meter.admission)
                    if ev.finish is not None:
                        break
                return
            pending: dict[asyncio.Future[Any], _Choice] = {}
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
                        ev = self._absorb(c, step.tokens, step.finish_reason)
                        yield ev
                        self._check_cap(choices, prompt_tokens, cap, meter.admission)
                        if ev.finish is None:
                            assert c.gen is not None
                            pending[asyncio.ensure_future(c.gen.__anext__())] = c
            finally:
                for fut in pending:
                    fut.cancel()
        finally:
            for c in choices:
                if c.gen is not None:
                    c.gen.cancel()

    @staticmethod
    def _absorb(c: _Choice, tokens: list[TokenOut], finish: str | None) -> _Event:
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
        return _Event(c, rel.text, tokens, finish)

    @staticmethod
    def _check_cap(choices: list[_Choice], prompt_tokens: int, cap: float | None, admission: Admission) -> None:
        if cap is None or all(c.finish is not None for c in choices):
            return
        used = prompt_tokens + sum(c.tokens for c in choices)
        if used >= cap:
            raise _units_refusal(admission, used + 1, cap, during=True)

    async def _stream(self, meter: _Meter, choices: list[_Choice], chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        status = 200
        try:
            async for chunk in chunks:
                yield chunk
        except AiaasError as e:
            status = e.status_code
            yield _sse(e.to_openai())
        except Exception as e:  # anything else still ends the stream in OpenAI's shape
            status = 500
            yield _sse(InferenceError(f"generation failed: {type(e).__name__}").to_openai())
        except BaseException:  # the client went away (cancellation): stop, meter what was produced
            status = 499
            raise
        finally:
            await meter.finish(status, sum(c.tokens for c in choices))
        yield DONE

    async def _collect(self, meter: _Meter, choices: list[_Choice]) -> None:
        status = 500
        try:
            async for _ in self._events(choices, meter):
                pass
            status = 200
        except AiaasError as e:
            status = e.status_code
            raise
        finally:
            await meter.finish(status, sum(c.tokens for c in choices))

    @staticmethod
    def _usage(prompt_tokens: int, choices: list[_Choice]) -> oa.Usage:
        completion = sum(c.tokens for c in choices)
        return oa.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion)

    # -- completions --------------------------------------------------------------------------------
    def _prompts(self, engine: Engine, prompt: Any) -> list[list[int]]:
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

    async def completion(self, principal: Principal, req: oa.CompletionRequest) -> oa.CompletionResponse | StreamResult:
        self._refuse_unsupported(req)
        if req.best_of is not None and req.best_of != req.n:
            raise InvalidInput("best_of other than n is not supported", param="best_of")
        if req.suffix:
            raise InvalidInput("suffix is not supported", param="suffix")
        vr, engine = self._llm(principal, req.model)
        prompts = self._prompts(engine, req.prompt)
        max_tokens = req.max_tokens or 16
        for ids in prompts:
            self._check_length(engine, len(ids), max_tokens, "prompt")
        stop = req.stop_list()
        choices = [
            _Choice(pi * req.n + j, ids, self._sampling(req, max_tokens, req.logprobs, j), Detokenizer(engine.tokenizer, ids, stop))
            for pi, ids in enumerate(prompts)
            for j in range(req.n)
        ]
        prompt_tokens = sum(len(p) for p in prompts)
        meter = await self._admit(principal, vr, req.model, "openai.completions", prompt_tokens)
        try:
            self._start(engine, choices)
        except AiaasError as e:
            await meter.finish(e.status_code, 0)
            raise
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        echo = {c.index: engine.tokenizer.decode(c.prompt_ids, skip_special_tokens=True) if req.echo else "" for c in choices}
        if req.stream:
            return StreamResult(self._stream(meter, choices, self._completion_chunks(req, meter, choices, rid, created, echo)),
                                dict(meter.admission.headers))  # fmt: skip
        await self._collect(meter, choices)
        return oa.CompletionResponse(
            id=rid, created=created, model=req.model,
            choices=[oa.CompletionChoice(index=c.index, text=echo[c.index] + "".join(c.text),
                                         logprobs=self._completion_logprobs(c.logprobs, c.detok) if c.params.logprobs is not None else None,
                                         finish_reason=c.finish) for c in choices],
            usage=self._usage(prompt_tokens, choices),
        )  # fmt: skip

    @staticmethod
    def _completion_logprobs(items: list[tuple[TokenOut, str]], detok: Detokenizer) -> oa.CompletionLogprobs:
        lp = oa.CompletionLogprobs()
        pos = 0
        for t, text in items:
            lp.tokens.append(text)
            lp.token_logprobs.append(t.logprob)
            lp.top_logprobs.append({detok.token_text(i): v for i, v in t.top} if t.top is not None else None)
            lp.text_offset.append(pos)
            pos += len(text)
        return lp

    async def _completion_chunks(self, req: oa.CompletionRequest, meter: _Meter, choices: list[_Choice], rid: str,
                                 created: int, echo: dict[int, str]) -> AsyncIterator[bytes]:  # fmt: skip
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        for c in choices:
            if echo[c.index]:
                yield _sse(oa.CompletionResponse(id=rid, created=created, model=req.model,
                                                 choices=[oa.CompletionChoice(index=c.index, text=echo[c.index])]))  # fmt: skip
        async for ev in self._events(choices, meter):
            if not ev.text and ev.finish is None and ev.choice.params.logprobs is None:
                continue
            lp = None
            if ev.choice.params.logprobs is not None:
                d = ev.choice.detok
                lp = self._completion_logprobs([(t, d.token_text(t.token_id)) for t in ev.tokens], d)
            chunk = oa.CompletionResponse(id=rid, created=created, model=req.model,
                                          choices=[oa.CompletionChoice(index=ev.choice.index, text=ev.text, logprobs=lp,
                                                                       finish_reason=ev.finish)])  # fmt: skip
            yield _sse(chunk)
        if include_usage:
            yield _sse(oa.CompletionResponse(id=rid, created=created, model=req.model, choices=[],
                                             usage=self._usage(meter.prompt_tokens, choices)))  # fmt: skip

    # -- chat ---------------------------------------------------------------------------------------
    async def chat(self, principal: Principal, req: oa.ChatCompletionRequest) -> oa.ChatCompletionResponse | StreamResult:
        self._refuse_unsupported(req)
        if req.tools:
            raise InvalidInput("tools are not supported by this server", param="tools")
        if req.response_format is not None and req.response_format.type != "text":
            raise InvalidInput(f"response_format {req.response_format.type!r} is not supported; use 'text'",
                               param="response_format")  # fmt: skip
        if req.top_logprobs is not None and not req.logprobs:
            raise InvalidInput("top_logprobs requires logprobs: true", param="top_logprobs")
        vr, engine = self._llm(principal, req.model)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": content_text(m.content)}
                    for m in req.messages]  # fmt: skip
        prompt_ids, fallback = render_chat(engine.tokenizer, messages)
        asked = req.max_completion_tokens or req.max_tokens
        max_tokens = asked or max(1, min(engine.default_max_tokens, engine.max_model_len - len(prompt_ids)))
        self._check_length(engine, len(prompt_ids), max_tokens, "messages")
        stop = req.stop_list() + (FALLBACK_STOP if fallback else [])
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        choices = [_Choice(j, prompt_ids, self._sampling(req, max_tokens, logprobs, j), Detokenizer(engine.tokenizer, prompt_ids, stop))
                   for j in range(req.n)]  # fmt: skip
        meter = await self._admit(principal, vr, req.model, "openai.chat", len(prompt_ids))
        try:
            self._start(engine, choices)
        except AiaasError as e:
            await meter.finish(e.status_code, 0)
            raise
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return StreamResult(self._stream(meter, choices, self._chat_chunks(req, meter, choices, rid, created)),
                                dict(meter.admission.headers))  # fmt: skip
        await self._collect(meter, choices)
        return oa.ChatCompletionResponse(
            id=rid, created=created, model=req.model,
            choices=[oa.ChatChoice(index=c.index, message=oa.AssistantMessage(content="".join(c.text)),
                                   logprobs=self._chat_logprobs(c.logprobs, c.detok) if c.params.logprobs is not None else None,
                                   finish_reason=c.finish) for c in choices],
            usage=self._usage(len(prompt_ids), choices),
        )  # fmt: skip

    @staticmethod
    def _chat_logprobs(items: list[tuple[TokenOut, str]], detok: Detokenizer) -> oa.ChoiceLogprobs:
        content = []
        for t, text in items:
            tops = [(detok.token_text(i), v) for i, v in (t.top or [])]
            top = [oa.TopLogprob(token=s, logprob=v, bytes=list(s.encode())) for s, v in tops]
            content.append(oa.TokenLogprob(token=text, logprob=t.logprob if t.logprob is not None else 0.0,
                                           bytes=list(text.encode()), top_logprobs=top))  # fmt: skip
        return oa.ChoiceLogprobs(content=content)

    async def _chat_chunks(self, req: oa.ChatCompletionRequest, meter: _Meter, choices: list[_Choice], rid: str,
                           created: int) -> AsyncIterator[bytes]:  # fmt: skip
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(choices_: list[oa.ChunkChoice], usage: oa.Usage | None = None) -> bytes:
            body = oa.ChatCompletionChunk(id=rid, created=created, model=req.model, choices=choices_, usage=usage)
            if include_usage or usage is not None:
                return _sse(body)
            return b"data: " + body.model_dump_json(exclude={"usage"}).encode() + b"\n\n"

        for c in choices:
            yield chunk([oa.ChunkChoice(index=c.index, delta=oa.Delta(role="assistant", content=""))])
        async for ev in self._events(choices, meter):
            lp = None
            if ev.choice.params.logprobs is not None:
                d = ev.choice.detok
                lp = self._chat_logprobs([(t, d.token_text(t.token_id)) for t in ev.tokens], d)
            if ev.text or lp is not None:
                yield chunk([oa.ChunkChoice(index=ev.choice.index, delta=oa.Delta(content=ev.text), logprobs=lp)])
            if ev.finish is not None:
                yield chunk([oa.ChunkChoice(index=ev.choice.index, delta=oa.Delta(), finish_reason=ev.finish)])
        if include_usage:
            yield chunk([], self._usage(meter.prompt_tokens, choices))

    # -- embeddings and audio (ordinary models through the data plane) ------------------------------------
    async def _infer(self, principal: Principal, model: str, inputs: dict[str, np.ndarray], endpoint: str) -> dict[str, np.ndarray]:
        self._visible(principal, model)
        out = await self.dataplane.infer(principal, model, None, inputs, {}, endpoint=endpoint)
        return out.outputs

    async def embeddings(self, principal: Principal, req: oa.EmbeddingRequest) -> oa.EmbeddingResponse:
        raw: list[Any] = [req.input] if isinstance(req.input, str) else list(req.input)
        if not raw:
            raise InvalidInput("input must not be empty", param="input")
        if not all(isinstance(t, str) for t in raw):
            raise InvalidInput("token-id input is not supported; send text", param="input")
        texts: list[str] = raw
        if any(not t for t in texts):
            raise InvalidInput("input must not contain empty strings", param="input")
        if len(texts) > 2048:
            raise InvalidInput("at most 2048 inputs per request", param="input")
        outputs = await self._infer(principal, req.model, {"text": np.array([t.encode() for t in texts], dtype=object)},
                                    "openai.embeddings")  # fmt: skip
        emb = outputs.get("embedding")
        if emb is None:
            raise InvalidInput(f"model {req.model!r} does not produce embeddings (output 'embedding')", param="model")
        emb = np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)
        if req.dimensions is not None:
            if req.dimensions > emb.shape[1]:
                raise InvalidInput(f"dimensions must be <= {emb.shape[1]} for this model", param="dimensions")
            emb = emb[:, : req.dimensions]
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.where(norms > 0, norms, 1.0)
        data = []
        for i, row in enumerate(emb):
            value: list[float] | str
            if req.encoding_format == "base64":
                value = base64.b64encode(row.astype("<f4").tobytes()).decode()
            else:
                value = row.tolist()
            data.append(oa.Embedding(index=i, embedding=value))
        tokens = sum(len(_WORDS.findall(t)) for t in texts)  # the model's own tokenizer is not visible here
        return oa.EmbeddingResponse(data=data, model=req.model, usage=oa.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

    async def transcription(self, principal: Principal, model: str, audio: bytes, response_format: str = "json") -> Any:
        if response_format not in ("json", "text", "verbose_json"):
            raise InvalidInput(f"response_format {response_format!r} is not supported; use json, text or verbose_json",
                               param="response_format")  # fmt: skip
        if not audio:
            raise InvalidInput("the audio file is empty", param="file")
        if not (audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"):
            raise InvalidInput("the audio file must be WAV (RIFF/WAVE)", param="file")
        outputs = await self._infer(principal, model, {"audio": np.array([audio], dtype=object)}, "openai.transcriptions")
        text = outputs.get("text")
        if text is None:
            raise InvalidInput(f"model {model!r} is not a speech recognizer (output 'text')", param="model")
        first = np.asarray(text).reshape(-1)[0]
        value = first.decode() if isinstance(first, bytes) else str(first)
        if response_format == "text":
            return value
        if response_format == "verbose_json":
            return verbose_transcription(value, _wav_seconds(audio), outputs.get("words"))
        return oa.Transcription(text=value)

    async def speech(self, principal: Principal, req: oa.SpeechRequest) -> bytes:
        audio_formats.check_format(req.response_format)
        outputs = await self._infer(principal, req.model, {"text": np.array([req.input.encode()], dtype=object)}, "openai.speech")
        audio = outputs.get("audio")
        if audio is None:
            raise InvalidInput(f"model {req.model!r} is not a speech synthesizer (output 'audio')", param="model")
        first = np.asarray(audio).reshape(-1)[0]
        return await asyncio.to_thread(audio_formats.encode, bytes(first), req.response_format)


def verbose_transcription(text: str, duration: float | None, words_out: Any) -> dict[str, Any]:
    """OpenAI's verbose_json: one segment for the utterance and, when the recognizer gives them (an output
    ``words``: JSON [{word, start, end}]), word timestamps; without them the segment spans the audio."""
    words: list[dict[str, Any]] = []
    if words_out is not None:
        raw = np.asarray(words_out).reshape(-1)[0]
        try:
            words = [{"word": str(w["word"]), "start": float(w["start"]), "end": float(w["end"])}
                     for w in orjson.loads(raw)]  # fmt: skip
        except (ValueError, TypeError, KeyError):
            words = []
    start = words[0]["start"] if words else 0.0
    end = words[-1]["end"] if words else (duration or 0.0)
    segments = [{"id": 0, "seek": 0, "start": start, "end": end, "text": text}] if text else []
    doc: dict[str, Any] = {"task": "transcribe", "language": None, "duration": duration, "text": text,
                           "segments": segments}  # fmt: skip
    if words:
        doc["words"] = words
    return doc


_WORDS = re.compile(r"\w+|[^\w\s]")


def _wav_seconds(audio: bytes) -> float | None:
    import io
    import wave

    try:
        with wave.open(io.BytesIO(audio)) as w:
            return w.getnframes() / float(w.getframerate())
    except Exception:
        return None
