"""The OpenAI routes through the official ``openai`` SDK against a real server (see conftest)."""

from __future__ import annotations

import base64
import io
import threading
import time
import wave
from collections.abc import Callable

import httpx
import numpy as np
import openai
import pytest

from aiaas.llm.base import Generation, SamplingParams, Step
from aiaas.llm.text import FALLBACK_TEMPLATE, Detokenizer, render_chat

from .conftest import ADMIN_KEY, Server

MSG = [{"role": "user", "content": "Hello there"}]
GREEDY = dict(temperature=0, extra_body={"ignore_eos": True})


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list().data}
    assert {"tiny-llm", "tiny-embed", "tiny-asr", "tiny-tts"} <= ids
    assert client.models.retrieve("tiny-llm").id == "tiny-llm"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_chat_stream_matches_non_stream_and_counts_tokens(client: openai.OpenAI, server: Server) -> None:
    full = client.chat.completions.create(model="tiny-llm", messages=MSG, max_tokens=12, **GREEDY)
    engine = server.engine()
    prompt_ids, _ = render_chat(engine.tokenizer, MSG)
    assert full.usage.prompt_tokens == len(prompt_ids)  # the tokenizer's chat template was applied
    assert full.usage.completion_tokens == 12 and full.choices[0].finish_reason == "length"
    chunks = list(
        client.chat.completions.create(
            model="tiny-llm", messages=MSG, max_tokens=12, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == len(prompt_ids)


def test_sse_wire_format_ends_with_done(server: Server) -> None:
    body = {"model": "tiny-llm", "prompt": "Hello", "max_tokens": 3, "stream": True, "temperature": 0}
    with httpx.stream(
        "POST", server.url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]" and len(lines) >= 2


def test_completion_stop_seed_n_logprobs(client: openai.OpenAI) -> None:
    base = client.completions.create(model="tiny-llm", prompt="The quick brown", max_tokens=24, **GREEDY)
    text = base.choices[0].text
    stop = text[8:11]
    assert len(stop) == 3
    cut = client.completions.create(model="tiny-llm", prompt="The quick brown", max_tokens=24, stop=[stop], **GREEDY)
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.usage.completion_tokens < 24
    sampled = dict(model="tiny-llm", prompt="Hello", max_tokens=10, temperature=1.0, top_p=0.95, seed=11, n=2)
    a = client.completions.create(**sampled)
    b = client.completions.create(**sampled)
    assert [c.text for c in a.choices] == [c.text for c in b.choices] and [c.index for c in a.choices] == [0, 1]
    assert a.usage.prompt_tokens == b.usage.prompt_tokens  # the prompt is counted once for n choices
    lp = client.completions.create(model="tiny-llm", prompt="Hello", max_tokens=4, logprobs=2, **GREEDY)
    lpc = lp.choices[0].logprobs
    assert len(lpc.token_logprobs) == 4 and len(lpc.top_logprobs) == 4
    assert all(
        len(t) <= 2 and max(t.values()) == pytest.approx(v)
        for t, v in zip(lpc.top_logprobs, lpc.token_logprobs, strict=True)
    )


def test_chat_logprobs_penalties_and_echo(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-llm", messages=MSG, max_tokens=3, logprobs=True, top_logprobs=2, **GREEDY
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 3 and all(len(t.top_logprobs) == 2 for t in content)
    plain = client.completions.create(model="tiny-llm", prompt="Hello world", max_tokens=20, logprobs=0, **GREEDY)
    pen = client.completions.create(
        model="tiny-llm",
        prompt="Hello world",
        max_tokens=20,
        logprobs=0,
        frequency_penalty=2.0,
        presence_penalty=2.0,
        **GREEDY,
    )
    distinct = [len(set(r.choices[0].logprobs.tokens)) for r in (plain, pen)]
    assert distinct[1] > distinct[0]  # penalties push away from repeated tokens
    echo = client.completions.create(model="tiny-llm", prompt="Hello world", max_tokens=2, echo=True, **GREEDY)
    assert echo.choices[0].text.startswith("Hello world")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"max_tokens": 100000}, "max_tokens"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"model": "tiny-embed"}, "model"),
        ({"messages": []}, "messages"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    args = {"model": "tiny-llm", "messages": MSG, "max_tokens": 4, **kwargs}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**args)
    assert e.value.status_code == 400
    err = e.value.body
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]


def test_unknown_model_and_bad_key(server: Server, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=MSG)
    assert e.value.body["code"] == "model_not_found"
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


class _Watched(Generation):
    """The engine's sequence, passed through; records when its consumer cancels it and whether it had ended."""

    def __init__(self, inner: Generation, cancelled: threading.Event) -> None:
        self.inner, self.cancelled = inner, cancelled
        self.ended = False  # a step with a finish reason came out before the cancel

    async def __anext__(self) -> Step:
        step = await self.inner.__anext__()
        self.ended = self.ended or step.finish_reason is not None
        return step

    def cancel(self) -> None:
        self.cancelled.set()
        self.inner.cancel()


def _until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a state the server reaches on its own; the bound only turns a hang into a failure."""
    for _ in range(12000):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_client_disconnect_stops_generation(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = server.engine()
    cancelled = threading.Event()
    watched: list[_Watched] = []

    def generate(prompt_ids: list[int], params: SamplingParams) -> Generation:
        watched.append(_Watched(real_generate(prompt_ids, params), cancelled))
        return watched[-1]

    real_generate = engine.generate
    monkeypatch.setattr(engine, "generate", generate)
    before = engine.stats()
    body = {
        "model": "tiny-llm",
        "messages": MSG,
        "max_tokens": 1900,
        "stream": True,
        "temperature": 0,
        "ignore_eos": True,
    }
    with httpx.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ) as r:
        lines = r.iter_lines()
        for _ in range(4):
            next(lines)
    # the connection is closed: the server cancels the sequence (event-driven, no time window) ...
    _until(cancelled.is_set, "the server cancelled the sequence of a client that went away")
    assert len(watched) == 1 and not watched[0].ended  # ... while it was still generating
    # ... and the engine drops it and frees its slot at its next step
    _until(lambda: engine.stats().cancelled > before.cancelled and engine.stats().running == 0, "the slot was freed")
    s = engine.stats()
    assert s.cancelled == before.cancelled + 1 and s.running == 0 and s.tokens_reserved == 0
    assert s.generated - before.generated < 1900


def test_embeddings_float_and_base64(client: openai.OpenAI, server: Server) -> None:
    floats = client.embeddings.create(model="tiny-embed", input=["hello", "world!"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == 8
    assert np.linalg.norm(floats.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    raw = httpx.post(
        server.url + "/v1/embeddings",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "tiny-embed", "input": ["hello", "world!"], "encoding_format": "base64"},
        timeout=60,
    ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][1]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats.data[1].embedding)
    sdk_default = client.embeddings.create(model="tiny-embed", input="hello")  # the SDK asks for base64 itself
    assert np.allclose(sdk_default.data[0].embedding, floats.data[0].embedding)
    short = client.embeddings.create(model="tiny-embed", input="hello", dimensions=4, encoding_format="float")
    assert len(short.data[0].embedding) == 4
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="tiny-llm", input="hello")
    assert e.value.body["param"] == "model"


def _wav(frames: int, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(frames, np.int16).tobytes())
    return buf.getvalue()


def test_audio_transcription_and_speech(client: openai.OpenAI) -> None:
    t = client.audio.transcriptions.create(model="tiny-asr", file=("a.wav", _wav(1600)))
    assert t.text == "heard 1600 frames at 16000 Hz"
    text = client.audio.transcriptions.create(model="tiny-asr", file=("a.wav", _wav(800)), response_format="text")
    assert "heard 800 frames" in str(text)
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="tiny-asr", file=("a.mp3", b"ID3 not a wav"))
    assert e.value.body["param"] == "file"
    speech = client.audio.speech.create(model="tiny-tts", voice="alloy", input="hello", response_format="wav")
    with wave.open(io.BytesIO(speech.content)) as w:
        assert w.getnframes() == 500 and w.getframerate() == 8000
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model="tiny-tts", voice="alloy", input="hello", response_format="ogg-vorbis")  # type: ignore[arg-type]
    assert e.value.body["param"] == "response_format"


def test_fallback_chat_template_and_stop_detokenizer(server: Server) -> None:
    tok = server.engine().tokenizer

    class NoTemplate:
        chat_template = None
        bos_token = None

        def apply_chat_template(self, messages, **kw):
            assert kw["chat_template"] == FALLBACK_TEMPLATE
            return tok.apply_chat_template(messages, **kw)

        def encode(self, text, add_special_tokens=True):
            return tok.encode(text, add_special_tokens=add_special_tokens)

    ids, fallback = render_chat(NoTemplate(), [{"role": "system", "content": "Be brief."}, *MSG])
    assert fallback and tok.decode(ids) == "Be brief.\n\nUser: Hello there\nAssistant:"
    d = Detokenizer(tok, [], stop=["brown fox"])
    out = "".join(d.add([t]).text for t in tok.encode("The quick brown fox jumps"))
    assert out == "The quick " and d.done


def test_token_limit_enforced_on_a_stream(server: Server) -> None:
    from aiaas.service.governance.service import SYSTEM_PRINCIPAL

    admin = server.app.state.governance_admin
    admin.create_tenant(SYSTEM_PRINCIPAL, "llm-tenant")
    key = admin.create_key(SYSTEM_PRINCIPAL, "llm-tenant", "user")["key"]
    admin.set_limits(SYSTEM_PRINCIPAL, "tenant", "llm-tenant", upm=40)
    c = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    received = 0
    stream = c.chat.completions.create(
        model="tiny-llm",
        messages=MSG,
        max_tokens=200,
        stream=True,
        temperature=0,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            received += sum(1 for ch in chunk.choices if ch.delta.content is not None)
    assert "rate limit" in str(e.value)
    assert received < 60  # stopped near the 40-token limit, not after 200 tokens
    with pytest.raises(openai.RateLimitError) as e2:  # the tokens were charged: the next call is refused
        c.chat.completions.create(model="tiny-llm", messages=MSG, max_tokens=4)
    assert int(e2.value.response.headers["retry-after"]) >= 1


def test_v2_infer_still_works_on_an_llm(server: Server) -> None:
    body = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["Hello", "world"]}],
        "parameters": {"max_tokens": 3},
    }
    r = httpx.post(
        server.url + "/v2/models/tiny-llm/infer",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "text" and out["shape"] == [2] and all(isinstance(x, str) for x in out["data"])
