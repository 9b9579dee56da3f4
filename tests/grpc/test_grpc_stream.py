"""ModelStreamInfer through ``tritonclient.grpc`` (sync callbacks) and ``tritonclient.grpc.aio``: ordinary models
answered per request id, an LLM streaming its tokens as a decoupled model, cancellation, errors inside a stream."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.grpc.aio as tga
from conftest import Served
from models import mlp_reference
from tritonclient.utils import InferenceServerException
from v2kit import ADMIN_KEY

from aiaas.service.openai.engine import llm_engine

H = {"authorization": f"Bearer {ADMIN_KEY}"}


def _text(prompt: str) -> tg.InferInput:
    inp = tg.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(np.array([prompt.encode()], dtype=object))
    return inp


def _final(result: Any) -> bool:
    return result.get_response().parameters["triton_final_response"].bool_param


def test_stream_of_ordinary_requests(served: Served) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with tg.InferenceServerClient(served.grpc_url) as c:
        c.start_stream(lambda result, error: got.put((result, error)), headers=H)
        xs = {f"r{i}": np.full((1, 4), i, np.float32) for i in range(6)}
        for rid, x in xs.items():
            inp = tg.InferInput("x", [1, 4], "FP32")
            inp.set_data_from_numpy(x)
            c.async_stream_infer("mlp", [inp], request_id=rid)
        bad = tg.InferInput("x", [1, 5], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
        c.async_stream_infer("mlp", [bad], request_id="bad")
        results = [got.get(timeout=30) for _ in range(len(xs) + 1)]
        c.stop_stream()
    errors = [e for _, e in results if e is not None]
    assert len(errors) == 1 and "INVALID_ARGUMENT" in errors[0].message() and "'x'" in errors[0].message()
    answers = {r.get_response().id: r for r, e in results if e is None}
    assert set(answers) == set(xs)
    for rid, x in xs.items():
        np.testing.assert_allclose(answers[rid].as_numpy("y"), mlp_reference(x), rtol=1e-5)


def test_llm_streams_tokens_with_final_flag(served: Served, llm_name: str) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with tg.InferenceServerClient(served.grpc_url) as c:
        c.start_stream(lambda result, error: got.put((result, error)), headers=H)
        c.async_stream_infer(
            llm_name,
            [_text("hello")],
            request_id="g1",
            parameters={"max_tokens": 12, "temperature": 0.0, "ignore_eos": True},
        )
        pieces = []
        while True:
            result, error = got.get(timeout=60)
            assert error is None, error
            assert result.get_response().id == "g1"
            pieces.append(result.as_numpy("text")[0])
            if _final(result):
                break
        c.stop_stream()
    assert len(pieces) > 1  # token by token, not one answer
    assert result.get_response().parameters["finish_reason"].string_param == "length"
    # the same greedy completion through the OpenAI route (one response) is the streamed text
    r = httpx.post(
        f"http://127.0.0.1:{served.http_port}/v1/completions",
        headers=H,
        timeout=60,
        json={"model": llm_name, "prompt": "hello", "max_tokens": 12, "temperature": 0, "ignore_eos": True},
    )
    assert b"".join(pieces).decode() == r.json()["choices"][0]["text"]


def test_llm_stream_cancel_stops_generation(served: Served, llm_name: str) -> None:
    engine = llm_engine(served.services.models.resolve(llm_name, None))
    cancelled_before = engine.stats().cancelled
    got: queue.Queue[Any] = queue.Queue()
    c = tg.InferenceServerClient(served.grpc_url)
    c.start_stream(lambda result, error: got.put((result, error)), headers=H)
    c.async_stream_infer(
        llm_name, [_text("once upon")], request_id="long", parameters={"max_tokens": 2000, "ignore_eos": True}
    )
    for _ in range(3):
        result, error = got.get(timeout=60)
        assert error is None and not _final(result)
    c.stop_stream(cancel_requests=True)
    c.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = engine.stats()
        if stats.cancelled > cancelled_before and stats.running == 0:
            break
        time.sleep(0.05)
    assert stats.cancelled > cancelled_before and stats.running == 0 and stats.waiting == 0


def test_llm_stream_asyncio_client(served: Served, llm_name: str) -> None:
    async def run() -> list[Any]:
        async with tga.InferenceServerClient(served.grpc_url) as c:

            async def requests() -> Any:
                yield {
                    "model_name": llm_name,
                    "inputs": [_text("abc")],
                    "request_id": "a1",
                    "parameters": {"max_tokens": 5, "ignore_eos": True},
                }

            out = []
            async for result, error in c.stream_infer(requests(), headers=H):
                assert error is None, error
                out.append(result)
                if _final(result):
                    break
            return out

    results = asyncio.run(run())
    assert len(results) >= 2 and all(not _final(r) for r in results[:-1])
    assert results[-1].get_response().parameters["finish_reason"].string_param == "length"


def test_llm_stream_empty_final_response(served: Served, llm_name: str) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with tg.InferenceServerClient(served.grpc_url) as c:
        c.start_stream(lambda result, error: got.put((result, error)), headers=H)
        c.async_stream_infer(
            llm_name, [_text("abc")], parameters={"max_tokens": 4, "ignore_eos": True}, enable_empty_final_response=True
        )
        results = []
        while not results or not _final(results[-1]):
            result, error = got.get(timeout=60)
            assert error is None, error
            results.append(result)
        c.stop_stream()
    assert list(results[-1].get_response().outputs) == [] and len(results) >= 2
    assert all(r.as_numpy("text") is not None and not _final(r) for r in results[:-1])


def test_llm_stream_refuses_bad_parameters_and_inputs(served: Served, llm_name: str) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with tg.InferenceServerClient(served.grpc_url) as c:
        c.start_stream(lambda result, error: got.put((result, error)), headers=H)
        c.async_stream_infer(llm_name, [_text("x")], parameters={"max_tokens": 0})
        c.async_stream_infer(llm_name, [_text("x")], parameters={"beam_width": 4})
        two = tg.InferInput("text", [2], "BYTES")
        two.set_data_from_numpy(np.array([b"a", b"b"], dtype=object))
        c.async_stream_infer(llm_name, [two])
        errors = sorted(str(got.get(timeout=30)[1].message()) for _ in range(3))
        c.stop_stream()
    assert all(e.startswith("INVALID_ARGUMENT") for e in errors)
    assert any("max_tokens" in e for e in errors) and any("beam_width" in e for e in errors)
    assert any("one prompt" in e for e in errors)


def test_asyncio_client_unary(served: Served) -> None:
    async def run() -> np.ndarray:
        async with tga.InferenceServerClient(served.grpc_url) as c:
            assert await c.is_server_ready()
            meta = await c.get_model_metadata("mlp", headers=H)
            assert meta.name == "mlp"
            inp = tga.InferInput("x", [1, 4], "FP32")
            inp.set_data_from_numpy(np.ones((1, 4), np.float32))
            results = await asyncio.gather(*(c.infer("mlp", [inp], headers=H) for _ in range(8)))
            return np.stack([r.as_numpy("y") for r in results])

    out = asyncio.run(run())
    np.testing.assert_allclose(out[3], mlp_reference(np.ones((1, 4), np.float32)), rtol=1e-5)


def test_stream_without_key_is_unauthenticated(served: Served) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with tg.InferenceServerClient(served.grpc_url) as c:
        c.start_stream(lambda result, error: got.put((result, error)))
        inp = tg.InferInput("x", [1, 4], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 4), np.float32))
        with contextlib.suppress(InferenceServerException):  # the stream may already have ended
            c.async_stream_infer("mlp", [inp])
        _, error = got.get(timeout=30)
        c.stop_stream()
    assert error is not None and "StatusCode.UNAUTHENTICATED" in str(error.status())


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _llm_tokens(served: Served, llm_name: str) -> tuple[float, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{served.http_port}/metrics", headers=H, timeout=30).text
    got = {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels.get("model") == llm_name
    }
    return got.get("aiaas_llm_prompt_tokens_total", 0.0), got.get("aiaas_llm_generation_tokens_total", 0.0)


def test_unary_llm_infer_counts_tokens_like_v1(served: Served, llm_name: str) -> None:
    """ModelInfer (one answer, not a stream) feeds the same token families as /v1 and the stream."""
    r = httpx.post(
        f"http://127.0.0.1:{served.http_port}/v1/completions",
        headers=H,
        timeout=60,
        json={"model": llm_name, "prompt": "hello", "max_tokens": 3, "temperature": 0, "ignore_eos": True},
    )
    prompt_tokens = r.json()["usage"]["prompt_tokens"]
    before = _llm_tokens(served, llm_name)
    with tg.InferenceServerClient(served.grpc_url) as c:
        result = c.infer(
            llm_name, [_text("hello")], parameters={"max_tokens": 3, "temperature": 0.0, "ignore_eos": True}, headers=H
        )
    assert result.as_numpy("text")[0] == r.json()["choices"][0]["text"].encode()
    after = _llm_tokens(served, llm_name)
    assert (after[0] - before[0], after[1] - before[1]) == (prompt_tokens, 3)
