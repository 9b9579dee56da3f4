"""LLM serving: continuous batching against sequential generation, and the engine's overhead over ``generate``.

Method (one run, same model, same settings: greedy, ``ignore_eos``, PROMPT ~ 20 tokens, N new tokens each)
------------------------------------------------------------------------------------------------------
* model: Gemma-3-270M converted by ``aiaas.llm.gemma`` when a directory is given (``--model DIR``), else a
  random Llama of similar shape built locally (hidden 640, 18 layers, 4 heads / 1 KV head, MLP 2048,
  vocabulary 262144 like Gemma's) -- nothing is downloaded.
* **bare generate**: ``model.generate(max_new_tokens=N, do_sample=False)`` one prompt at a time: tokens/s.
* **sequential**: the engine (``aiaas.llm.torch_engine.TorchEngine``) serving R requests one after another.
* **concurrent c** (c = 1, 4, 16): R requests, c streams in flight at any time (a new one starts when one
  ends): aggregate tokens/s and time to first token (submit -> first token) p50 / p99.

Targets: aggregate tokens/s at 16 streams >= 5x sequential; one stream's tokens/s within 10 % of bare
``generate`` (overhead = 1 - engine / generate). The machine is shared and noisy: the ratios are taken within
one run, and ``--repeat`` takes the best of several passes for each figure.

    .venv/bin/python bench/llm.py [--model DIR] [--tokens 64] [--requests 32] [--threads 2]

The real-model mode -- the catalog's Gemma-3-270M on every aiaas engine against llama.cpp in the same run --
is ``bench/llm_real.py`` (docs/llm.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiaas.llm.base import SamplingParams
from aiaas.llm.queue_engine import EngineLimits
from aiaas.llm.tiny import build_model
from aiaas.llm.torch_engine import TorchEngine

PROMPTS = [
    "The quick brown fox jumps over the lazy dog and then",
    "A model as a service answers requests from many users at once, so",
    "Continuous batching lets new requests join the running batch between decode steps;",
    "Hello world! How are you today? I am fine, thank you, and",
]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def run_load(
    engine: TorchEngine, prompts: list[list[int]], n: int, concurrency: int
) -> tuple[float, list[float]]:
    """Aggregate tokens/s and TTFTs for len(prompts) requests with ``concurrency`` in flight."""
    queue = list(prompts)
    ttfts: list[float] = []
    total = 0

    async def worker() -> None:
        nonlocal total
        while queue:
            ids = queue.pop()
            t0 = time.perf_counter()
            first = True
            async for step in engine.generate(ids, SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)):
                if first and step.tokens:
                    ttfts.append(time.perf_counter() - t0)
                    first = False
                total += len(step.tokens)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - t0), ttfts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is None:
        tmp = Path(tempfile.mkdtemp(prefix="aiaas-bench-llm-"))
        args.model = build_model(
            tmp / "hf",
            hidden=640,
            layers=18,
            heads=4,
            kv_heads=1,
            intermediate=2048,
            model_vocab=262144,
            max_positions=4096,
        )
        label = "random Llama, Gemma-3-270M shape (hidden 640, 18 layers, vocab 262144)"
    else:
        label = str(args.model)
    t0 = time.perf_counter()
    engine = TorchEngine(args.model, limits=EngineLimits(max_num_seqs=16, threads=args.threads))
    engine.start()
    print(
        f"model: {label}; load {time.perf_counter() - t0:.1f}s; "
        f"{sum(p.numel() for p in engine.model.parameters()) / 1e6:.0f}M params; "
        f"threads {args.threads}; N={args.tokens} new tokens per request, greedy"
    )
    tok = engine.tokenizer
    prompts = [tok.encode(PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)]
    n = args.tokens

    # bare generate, one prompt at a time
    model = engine.model
    with torch.inference_mode():
        model.generate(torch.tensor([prompts[0]]), max_new_tokens=4, do_sample=False)  # warm-up
    bare = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        toks = 0
        with torch.inference_mode():
            for ids in prompts[:4]:
                out = model.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
                toks += out.shape[1] - len(ids)
        bare.append(toks / (time.perf_counter() - t0))
    bare_tps = max(bare)

    async def measure() -> dict[str, tuple[float, list[float]]]:
        await run_load(engine, prompts[:2], 4, 1)  # warm-up
        res: dict[str, tuple[float, list[float]]] = {}
        best: dict[str, tuple[float, list[float]]] = {}
        for _ in range(args.repeat):
            res["one stream"] = await run_load(engine, prompts[:4], n, 1)
            res["sequential"] = await run_load(engine, prompts[: min(8, len(prompts))], n, 1)
            for c in (4, 16):
                res[f"{c} streams"] = await run_load(engine, prompts, n, c)
            for k, v in res.items():
                if k not in best or v[0] > best[k][0]:
                    best[k] = v
        return best

    best = asyncio.run(measure())
    engine.close()
    seq = best["sequential"][0]
    print(f"\n{'load':<14}{'tokens/s':>10}{'x seq':>8}{'TTFT p50 ms':>13}{'TTFT p99 ms':>13}")
    print(f"{'bare generate':<14}{bare_tps:>10.1f}{bare_tps / seq:>8.2f}{'':>13}{'':>13}")
    for k in ("sequential", "one stream", "4 streams", "16 streams"):
        tps, ttft = best[k]
        print(f"{k:<14}{tps:>10.1f}{tps / seq:>8.2f}{pct(ttft, 0.5) * 1e3:>13.1f}{pct(ttft, 0.99) * 1e3:>13.1f}")
    ratio16 = best["16 streams"][0] / seq
    overhead = 1.0 - best["one stream"][0] / bare_tps
    print(f"\naggregate 16 streams / sequential = {ratio16:.2f}x (target >= 5x): {'PASS' if ratio16 >= 5 else 'MISS'}")
    print(
        f"one stream vs bare generate: overhead {overhead * 100:+.1f}% (target <= 10%): "
        f"{'PASS' if overhead <= 0.10 else 'MISS'}"
    )
    print(
        f"TTFT at 16 streams: p50 {pct(best['16 streams'][1], 0.5) * 1e3:.0f} ms, p99 "
        f"{pct(best['16 streams'][1], 0.99) * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
