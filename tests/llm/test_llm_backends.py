"""Engine choice, decode threads, int8 weights for the torch engine, and the llamacpp engine on a tiny GGUF
written here (skipped where llama-cpp-python is not installed: ``make install-llamacpp``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from aiaas.llm import llamacpp_engine
from aiaas.llm.base import SamplingParams
from aiaas.llm.nbits import NBitsLinear
from aiaas.llm.quant import quantize, targets
from aiaas.llm.queue_engine import EngineLimits
from aiaas.llm.threads import ThreadPolicy, cores
from aiaas.llm.torch_engine import TorchEngine
from aiaas.runtime.llm import find_gguf, pick_engine

from .gguf_tiny import write_gguf
from .test_engine import collect, reference_greedy

needs_llamacpp = pytest.mark.skipif(
    not llamacpp_engine.available(), reason=f"llama-cpp-python is not installed: {llamacpp_engine.INSTALL_HINT}"
)


def test_thread_policy() -> None:
    p = ThreadPolicy.create()
    assert p.idle == cores() and p.busy == max(1, cores() - 1)
    q = ThreadPolicy.create(threads=4, busy_threads=2, busy_streams=3)
    assert [q.pick(n) for n in (0, 2, 3, 16)] == [4, 4, 2, 2]
    assert ThreadPolicy.create(threads=2, busy_streams=0).pick(100) == 2
    with pytest.raises(ValueError):
        ThreadPolicy.create(threads=-1)


def test_pick_engine(tmp_path: Path) -> None:
    assert pick_engine("auto", tmp_path) == "torch"
    assert pick_engine("torch", tmp_path) == "torch"
    with pytest.raises(ValueError, match="unknown LLM engine 'vllm'"):
        pick_engine("vllm", tmp_path)
    with pytest.raises(ValueError, match="holds none"):
        pick_engine("llamacpp", tmp_path)
    (tmp_path / "a.gguf").write_bytes(b"x")
    assert find_gguf(tmp_path) == tmp_path / "a.gguf"
    assert pick_engine("auto", tmp_path) == ("llamacpp" if llamacpp_engine.available() else "torch")
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(ValueError, match="2 GGUF files"):
        find_gguf(tmp_path)


def test_int8_replaces_every_linear_layer(tiny_llm: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.inference_mode():
        ref = model(input_ids=ids).logits[0, -1]
    linears = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    assert targets(model) == linears and "lm_head" in linears and len(linears) == 15
    assert quantize(model, "int8") == 15
    assert all(isinstance(model.get_submodule(n), NBitsLinear) for n in linears)
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    assert attn.q_proj._shared is attn.k_proj._shared is attn.v_proj._shared is not attn.o_proj._shared
    assert mlp.gate_proj._shared is mlp.up_proj._shared is not mlp.down_proj._shared
    assert model.get_input_embeddings().weight.dtype == torch.float32  # the tied embedding stays a float table
    with torch.inference_mode():
        got = model(input_ids=ids).logits[0, -1]
    assert torch.nn.functional.cosine_similarity(ref, got, dim=0) > 0.999
    with pytest.raises(ValueError, match="quantize must be one of"):
        quantize(model, "int3")


def test_torch_engine_int8_serves(tiny_llm: Path) -> None:
    eng = TorchEngine(tiny_llm, quantize="int8", limits=EngineLimits(threads=1, max_num_seqs=2))
    eng.start()
    try:

        async def two() -> list[tuple[list[int], str | None]]:
            p = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
            return await asyncio.gather(collect(eng.generate([5, 6, 7], p)), collect(eng.generate([8, 9], p)))

        (a, fa), (b, fb) = asyncio.run(two())
        assert len(a) == len(b) == 6 and fa == fb == "length"
        # activations are quantized per row and block of 32: a row's numbers do not depend on its batch
        # neighbours, so the text matches the unbatched int8 forward
        assert a == reference_greedy(eng, [5, 6, 7], 6)
    finally:
        eng.close()


def test_torch_threads_one_beside_onnxruntime(tiny_llm: Path) -> None:
    # int8's linear layers run on onnxruntime's pools: torch keeps one thread (its spinning OpenMP workers would
    # take their cores); float32 runs on the policy's threads
    limits = EngineLimits(threads=2, busy_threads=1, busy_streams=4)
    int8, fp32 = TorchEngine(tiny_llm, quantize="int8", limits=limits), TorchEngine(tiny_llm, limits=limits)
    try:
        assert [int8._torch_threads(n) for n in (1, 16)] == [1, 1]
        assert [fp32._torch_threads(n) for n in (1, 16)] == [2, 1]
        assert int8.model.lm_head._shared.session.get_session_options().intra_op_num_threads == 2
    finally:
        int8.close()
        fp32.close()


@pytest.fixture(scope="module")
def tiny_gguf(tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(tiny_llm, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def lc_engine(tiny_gguf: Path, tiny_llm: Path) -> Iterator[llamacpp_engine.LlamaCppEngine]:
    if not llamacpp_engine.available():
        pytest.skip(f"llama-cpp-python is not installed: {llamacpp_engine.INSTALL_HINT}")
    eng = llamacpp_engine.LlamaCppEngine(
        tiny_gguf,
        tokenizer_dir=tiny_llm,
        prefix_cache_slots=2,
        limits=EngineLimits(threads=1, max_num_seqs=3, max_num_tokens=2048, max_prefill_tokens=16),
    )
    eng.start()
    yield eng
    eng.close()


@needs_llamacpp
def test_llamacpp_matches_torch_greedy_batched(lc_engine: llamacpp_engine.LlamaCppEngine, tiny_llm: Path) -> None:
    ref_engine = TorchEngine(tiny_llm, limits=EngineLimits(threads=1))
    prompts = [[5, 6, 7, 8], list(range(10, 50)), [3, 1, 4, 1, 5, 9, 2, 6]]  # 40 tokens: 3 prefill chunks of 16
    want = [reference_greedy(ref_engine, p, 8) for p in prompts]

    async def all_at_once() -> list[tuple[list[int], str | None]]:
        p = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
        return await asyncio.gather(*(collect(lc_engine.generate(ids, p)) for ids in prompts))

    got = asyncio.run(all_at_once())
    assert [g[0] for g in got] == want
    assert all(g[1] == "length" for g in got)


def run_one(engine: llamacpp_engine.LlamaCppEngine, ids: list[int], p: SamplingParams) -> tuple[list[int], str | None]:
    async def go() -> tuple[list[int], str | None]:
        return await collect(engine.generate(ids, p))

    return asyncio.run(go())


@needs_llamacpp
def test_llamacpp_prefix_cache_and_cancel(lc_engine: llamacpp_engine.LlamaCppEngine, tiny_llm: Path) -> None:
    ref_engine = TorchEngine(tiny_llm, limits=EngineLimits(threads=1))
    system = list(range(100, 140))
    first, second = [*system, 7, 8, 9], [*system, 11, 12]
    p = SamplingParams(max_tokens=5, temperature=0.0, ignore_eos=True)
    run_one(lc_engine, first, p)
    hits = lc_engine.stats().extra["prefix_hits"]
    out, _ = run_one(lc_engine, second, p)
    assert lc_engine.stats().extra["prefix_hits"] == hits + 1  # the 40-token system prompt was reused
    assert out == reference_greedy(ref_engine, second, 5)  # and the text is what a full prefill gives

    async def cancel_early() -> None:
        gen = lc_engine.generate([1, 2, 3], SamplingParams(max_tokens=500, temperature=0.0, ignore_eos=True))
        async for _ in gen:
            break
        await gen.aclose()

    asyncio.run(cancel_early())
    a = run_one(lc_engine, [4, 5, 6], SamplingParams(max_tokens=6, temperature=0.9, seed=7, ignore_eos=True))
    b = run_one(lc_engine, [4, 5, 6], SamplingParams(max_tokens=6, temperature=0.9, seed=7, ignore_eos=True))
    assert a == b and len(a[0]) == 6


@needs_llamacpp
def test_llamacpp_behind_the_openai_routes(tiny_llm: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from aiaas.server.app import create_app
    from aiaas.settings import Settings

    home = tmp_path / "home"
    version = home / "models" / "tiny-gguf" / "1"
    shutil.copytree(tiny_llm, version)
    shutil.copy2(tiny_gguf, version / "tiny.gguf")
    (version.parent / "model.yaml").write_text(
        "backend: llm\ntask: text-generation\nparameters: {engine: llamacpp, threads: 1, max_num_seqs: 2, "
        "max_num_tokens: 1024, max_prefill_tokens: 16}\n"
    )
    auth = {"Authorization": "Bearer k"}
    with TestClient(create_app(Settings(home=home, admin_key="k", catalog="none"))) as c:  # type: ignore[call-arg]
        r = c.post(
            "/v1/completions",
            headers=auth,
            json={"model": "tiny-gguf", "prompt": "Hello world", "max_tokens": 5, "temperature": 0},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] == 5 or body["choices"][0]["finish_reason"] == "stop"
        with c.stream(
            "POST",
            "/v1/completions",
            headers=auth,
            json={"model": "tiny-gguf", "prompt": "Hello world", "max_tokens": 5, "temperature": 0, "stream": True},
        ) as s:
            chunks = [line for line in s.iter_lines() if line.startswith("data: ")]
        assert chunks[-1] == "data: [DONE]" and len(chunks) >= 2
        streamed = "".join(json.loads(x[6:])["choices"][0]["text"] for x in chunks[:-1])
        assert streamed == body["choices"][0]["text"]


def _greedy_all(eng: TorchEngine, prompts: list[list[int]], n: int) -> list[list[int]]:
    async def go() -> list[tuple[list[int], str | None]]:
        p = SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)
        return await asyncio.gather(*(collect(eng.generate(ids, p)) for ids in prompts))

    return [out for out, _ in asyncio.run(go())]


def test_torch_chunked_prefill_gives_the_same_tokens(tiny_llm: Path) -> None:
    """Prompts longer than one chunk are read over several steps, interleaved with decoding; greedy tokens are
    those of an engine that reads each prompt at once, and of the plain forward."""
    prompts = [list(range(10, 50)), [5, 6, 7], list(range(200, 237)), [3, 1, 4, 1, 5, 9, 2, 6]]
    whole = TorchEngine(tiny_llm, prefix_cache_tokens=0, limits=EngineLimits(threads=1, max_prefill_tokens=512))
    chunked = TorchEngine(tiny_llm, prefix_cache_tokens=0, limits=EngineLimits(threads=1, max_prefill_tokens=8))
    for e in (whole, chunked):
        e.start()
    try:
        want = _greedy_all(whole, prompts, 8)
        got = _greedy_all(chunked, prompts, 8)
        assert got == want
        assert want[0] == reference_greedy(whole, prompts[0], 8)
        # every prompt token ran through the model once; the 40-token prompt took ceil(40 / 8) = 5 steps
        assert chunked.stats().extra["prefill_tokens"] == sum(len(p) for p in prompts)
        assert whole.stats().extra["prefill_tokens"] == sum(len(p) for p in prompts)
    finally:
        whole.close()
        chunked.close()


def test_torch_prefix_cache_skips_prefill_and_keeps_the_text(tiny_llm: Path) -> None:
    """A second prompt sharing a 40-token system prompt reuses its first two 16-token blocks: 32 fewer tokens
    run through the model, and greedy tokens equal those of an engine without the cache."""
    system = list(range(100, 140))
    first, second = [*system, 7, 8, 9], [*system, 11, 12]
    plain = TorchEngine(tiny_llm, prefix_cache_tokens=0, limits=EngineLimits(threads=1))
    cached = TorchEngine(tiny_llm, prefix_cache_tokens=256, limits=EngineLimits(threads=1, max_prefill_tokens=16))
    for e in (plain, cached):
        e.start()
    try:
        _greedy_all(cached, [first], 4)
        before = cached.stats().extra
        assert before["prefix_hits"] == 0 and before["prefill_tokens"] == len(first)
        assert before["prefix_cached_tokens"] == 32  # whole blocks of the 43-token prompt
        got = _greedy_all(cached, [second], 6)
        after = cached.stats().extra
        assert after["prefix_hits"] == 1 and after["prefix_tokens_reused"] == 32
        assert after["prefill_tokens"] - before["prefill_tokens"] == len(second) - 32
        assert got == _greedy_all(plain, [second], 6)
        assert got[0] == reference_greedy(plain, second, 6)
        # a prompt that is the cached prefix itself still computes its last token
        exact = system[:32]
        assert _greedy_all(cached, [exact], 3) == _greedy_all(plain, [exact], 3)
        assert cached.stats().extra["prefix_tokens_reused"] == 32 + 16
    finally:
        plain.close()
        cached.close()


def test_prefix_cache_is_bounded_lru() -> None:
    from aiaas.llm.prefix_cache import PrefixCache

    pc = PrefixCache(max_tokens=24, block=4)

    def kv(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros(1, 1, 8, 2)[:, :, :n], torch.ones(1, 1, 8, 2)[:, :, :n])]

    a, b, c = [1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 10, 11, 12, 13, 14], [20, 21, 22, 23, 24]
    pc.store(a, kv)
    pc.store(b, kv)
    assert pc.tokens == 16 and len(pc) == 2
    hit = pc.lookup([1, 2, 3, 4, 5, 6, 7, 8, 0])
    assert hit is not None and hit[0] == 8 and hit[1][0][0].shape == (1, 1, 8, 2)
    assert pc.lookup([1, 2, 3, 4, 5])[0] == 4  # type: ignore[index]  # shares block 0 with both
    assert pc.lookup([1, 2, 3, 4]) is None  # the last prompt token is never taken from the cache
    pc.store(a, kv)  # already held: nothing added
    assert pc.tokens == 16
    pc.store(list(range(50, 67)), kv)  # 16 tokens more: over 24, the least recently used (b) goes
    assert pc.tokens == 24 and len(pc) == 2
    assert pc.lookup([1, 2, 3, 4, 10, 11, 12, 13, 0])[0] == 4  # type: ignore[index]  # a still holds block 0
    pc.store(c, kv)
    assert pc.tokens <= 24
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_torch_long_prompt_is_read_between_decode_steps(tiny_llm: Path) -> None:
    """While a 40-token prompt is read in 8-token chunks, a running stream keeps getting tokens: one decode step
    after each of the first four chunks, before the long prompt's first token."""
    eng = TorchEngine(tiny_llm, prefix_cache_tokens=0, limits=EngineLimits(threads=1, max_prefill_tokens=8))
    eng.start()
    try:

        async def go() -> int:
            p = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)
            running = eng.generate([5, 6, 7], p)
            seen = 0
            async for step in running:
                seen += len(step.tokens)
                if seen >= 3:
                    break
            long = eng.generate(list(range(10, 50)), SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True))
            first = asyncio.ensure_future(collect(long))
            during = 0
            while not first.done():
                step = await running.__anext__()
                if not first.done():
                    during += len(step.tokens)
            await running.aclose()
            return during

        assert asyncio.run(go()) >= 4
    finally:
        eng.close()


def test_engine_limits_parse() -> None:
    base = EngineLimits(max_num_seqs=8)
    got = EngineLimits.parse({"threads": 2, "max_prefill_tokens": 64, "quantize": "int8"}, base)
    assert (got.max_num_seqs, got.threads, got.max_prefill_tokens, got.max_model_len) == (8, 2, 64, None)
    with pytest.raises(ValueError, match="max_num_seqs must be an integer"):
        EngineLimits.parse({"max_num_seqs": "8"})
    with pytest.raises(ValueError, match="max_prefill_tokens must be >= 1"):
        EngineLimits.parse({"max_prefill_tokens": 0})
    with pytest.raises(ValueError, match="threads must be >= 0"):
        EngineLimits(threads=-1)
