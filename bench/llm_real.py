"""aiaas's LLM engines against llama.cpp on the catalog's Gemma-3-270M, in one run (issue: LLM serving at the
speed of the best CPU engines).

Same GGUF (Q4_K_M), same prompts (token ids), greedy, ``ignore_eos``, same threads, one after another, each
row in a fresh child process of its own:

* **llama.cpp-c** (the anchor): llama.cpp's C API as its ``simple`` example uses it (one sequence, greedy
  argmax over the last logits), through llama-cpp-python's ctypes bindings; at 4 and 16 streams as its
  ``batched`` example decodes (every sequence's next token in one ``llama_batch`` per step, one row of logits
  each), so the aggregate figures compare the engines with llama.cpp's own multi-sequence decode.
* **llama.cpp**: llama-cpp-python's high-level ``Llama`` on the GGUF, one sequence at a time (its
  high-level API has no multi-sequence batching, so its 4- and 16-stream figure is its sequential rate).
  Both anchors run in a child process that never imports torch, on a thread of their own (on Python's main
  thread of a process that had imported torch llama.cpp decoded 2-3x slower here).
* **aiaas-llamacpp**: ``aiaas.llm.llamacpp_engine`` on the same GGUF (multi-sequence decode, chunked prefill,
  prefix cache), when llama-cpp-python is installed.
* **torch-int8** / **torch-fp32**: ``aiaas.llm.torch_engine`` on the Hugging Face directory converted
  from the GGUF (``aiaas.llm.gemma``), ``quantize: int8`` and ``none`` (chunked prefill, prefix cache).

Per backend: single-stream decode tokens/s (after the first token), time to first token for a 512-token
prompt, aggregate tokens/s at 4 and 16 streams; for every aiaas engine also the TTFT of a second 512-token
prompt sharing its first 496 tokens (prefix cache) and the gaps between two tokens of a running stream while
a 2,048-token prompt is admitted (chunked prefill). Every figure is also printed as a ratio to the anchor
measured in the same run. The engines decode on ``--threads`` at every load (``--busy-streams 0``: the bench
has no HTTP path to leave a core to). The machine is shared: run it ``nice`` d and read the ratios.

    nice .venv/bin/python bench/llm_real.py --gguf G.gguf --hf HF_DIR [--threads 2] [--tokens 32] [--repeat 3]

``--repeat N`` runs every row N times, every other round in reverse order, and reports each figure's median:
on a shared (virtual) host one 32-token decode can be caught by a burst of someone else's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiaas.llm.base import Engine, SamplingParams

PROMPTS = [
    "The quick brown fox jumps over the lazy dog and then",
    "A model as a service answers requests from many users at once, so",
    "Continuous batching lets new requests join the running batch between decode steps;",
    "The capital of France is",
]
FILLER = (
    "The history of science is the study of the development of science and scientific knowledge, "
    "including both the natural and social sciences. "
)


def long_prompt(tok: Any, n: int, salt: str = "") -> list[int]:
    """``n`` tokens; prompts with different ``salt`` differ from their first tokens (no shared prefix)."""
    return tok.encode(f"Note {salt}: " + FILLER * (n // 10 + 2))[:n]


async def stream(engine: Engine, ids: list[int], n: int, gaps: list[float] | None = None) -> tuple[int, float, float]:
    """Tokens, time to first token, total time of one greedy request."""
    t0 = time.perf_counter()
    first = last = 0.0
    count = 0
    async for step in engine.generate(list(ids), SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)):
        now = time.perf_counter()
        if count == 0:
            first = now - t0
        elif gaps is not None:
            gaps.append(now - last)
        last = now
        count += len(step.tokens)
    return count, first, time.perf_counter() - t0


async def measure_engine(engine: Engine, args: argparse.Namespace) -> dict[str, float]:
    tok = engine.tokenizer
    prompts = [tok.encode(p) for p in PROMPTS]
    n = args.tokens
    await stream(engine, prompts[0], 4)  # warm-up
    res: dict[str, float] = {}
    k, f, dt = await stream(engine, prompts[3], n)
    res["decode"] = (k - 1) / (dt - f)
    res["ttft512"] = min([(await stream(engine, long_prompt(tok, 512, f"case {i}"), 1))[1] for i in range(2)])
    for c in (4, 16):
        t0 = time.perf_counter()
        out = await asyncio.gather(*(stream(engine, prompts[i % len(prompts)], n) for i in range(c)))
        res[f"agg{c}"] = sum(o[0] for o in out) / (time.perf_counter() - t0)
    # prefix cache and chunked prefill (every aiaas engine has both)
    base = long_prompt(tok, 512, "first")
    again = base[:496] + long_prompt(tok, 40, "second")[-16:]
    await stream(engine, base, 1)
    res["ttft512_prefix"] = (await stream(engine, again, 1))[1]
    gaps: list[float] = []
    runner = asyncio.create_task(stream(engine, prompts[0], n, gaps))
    await asyncio.sleep(0.3)
    await stream(engine, long_prompt(tok, 2048, "long"), 1)
    await runner
    res["gap_max_ms"] = max(gaps) * 1e3 if gaps else 0.0
    res["gap_p50_ms"] = sorted(gaps)[len(gaps) // 2] * 1e3 if gaps else 0.0
    return res


def anchor_prompts(tok: Any) -> dict[str, Any]:
    """The token ids the anchors run (computed here, so the child process needs no tokenizer and no torch)."""
    return {
        "warm": tok.encode(PROMPTS[0]),
        "decode": tok.encode(PROMPTS[3]),
        "ttft": [long_prompt(tok, 512, f"case {i}") for i in range(2)],
        "streams": [tok.encode(p) for p in PROMPTS],
    }


def anchor_figures(run: Any, ids: dict[str, Any], n: int, run_many: Any = None) -> dict[str, float]:
    """The figures of an anchor; ``run(ids, n)`` -> (tokens, TTFT, total time) of one sequence;
    ``run_many(prompts, n)`` -> tokens of all prompts decoded together (multi-sequence decode), or None: the
    anchor decodes one sequence at a time and its 4- and 16-stream figure is its sequential rate."""
    run(ids["warm"], 4)
    res: dict[str, float] = {}
    k, f, dt = run(ids["decode"], n)
    res["decode"] = (k - 1) / (dt - f)
    res["ttft512"] = min(run(p, 1)[1] for p in ids["ttft"])
    streams = ids["streams"]
    if run_many is None:
        t0 = time.perf_counter()  # one sequence at a time: aggregate = total tokens / total time (same for 4 and 16)
        total = sum(run(p, n)[0] for p in streams)
        res["agg4"] = res["agg16"] = total / (time.perf_counter() - t0)
        return res
    for c in (4, 16):  # the prompts the engines' c streams run (prompt i % 4), all in one batch per step
        t0 = time.perf_counter()
        total = run_many([streams[i % len(streams)] for i in range(c)], n)
        res[f"agg{c}"] = total / (time.perf_counter() - t0)
    return res


def measure_llamacpp_anchor(gguf: Path, ids: dict[str, Any], threads: int, n: int) -> dict[str, float]:
    import llama_cpp

    llm = llama_cpp.Llama(str(gguf), n_threads=threads, n_threads_batch=threads, n_ctx=4096, n_batch=512, verbose=False)

    def run(prompt: list[int], n: int) -> tuple[int, float, float]:
        llm.reset()
        t0 = time.perf_counter()
        first = 0.0
        count = 0
        for _ in llm.generate(prompt, temp=0.0, reset=True):
            count += 1
            if count == 1:
                first = time.perf_counter() - t0
            if count >= n:
                break
        return count, first, time.perf_counter() - t0

    return anchor_figures(run, ids, n)


def llama_decode_rows(lc: Any, ctx: Any, batch: Any, rows: list[tuple[int, int, int, bool]]) -> None:
    """One ``llama_decode`` of ``rows`` (token, position, sequence id, wants logits) through ``batch`` (allocated
    with ``llama_batch_init`` for at least ``len(rows)`` tokens). Also used by ``bench/llamacpp_step.py``."""
    for i, (tok, pos, seq, want) in enumerate(rows):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, want
        batch.seq_id[i][0] = seq
    batch.n_tokens = len(rows)
    if lc.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")


def measure_llamacpp_c(gguf: Path, ids: dict[str, Any], threads: int, n: int) -> dict[str, float]:
    """llama.cpp through its C API the way its ``simple`` example decodes: one sequence, ``llama_batch_get_one``,
    greedy argmax of the last logits -- llama.cpp without llama-cpp-python's Python-side sampling; 4 and 16
    streams as its ``batched`` example decodes them (all sequences in one batch per step)."""
    import ctypes

    import llama_cpp as lc
    import numpy as np

    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(str(gguf).encode(), lc.llama_model_default_params())
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_threads, cp.n_threads_batch = 4096, 512, 512, threads, threads
    ctx = lc.llama_init_from_model(model, cp)
    mem = lc.llama_get_memory(ctx)
    vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))

    def run(prompt: list[int], n: int) -> tuple[int, float, float]:
        lc.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        first, count, pending = 0.0, 0, list(prompt)
        while count < n:
            for i in range(0, len(pending), 512):
                chunk = (ctypes.c_int32 * len(pending[i : i + 512]))(*pending[i : i + 512])
                if lc.llama_decode(ctx, lc.llama_batch_get_one(chunk, len(pending[i : i + 512]))) != 0:
                    raise RuntimeError("llama_decode failed")
            logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, -1), shape=(vocab,))
            pending = [int(logits.argmax())]
            count += 1
            if count == 1:
                first = time.perf_counter() - t0
        return count, first, time.perf_counter() - t0

    # 4 and 16 streams: llama.cpp's multi-sequence decode as its ``batched`` example and server run it -- one
    # llama_batch per step holding every sequence's next token (prompts first, read together), one row of
    # logits per sequence, greedy argmax per row; llama.cpp's default KV layout (a stream of cells per sequence)
    bp = lc.llama_context_default_params()
    bp.n_ctx, bp.n_batch, bp.n_ubatch, bp.n_seq_max = 16 * 1024, 512, 512, 16
    bp.n_threads = bp.n_threads_batch = threads
    bctx = lc.llama_init_from_model(model, bp)
    bmem = lc.llama_get_memory(bctx)
    batch = lc.llama_batch_init(512, 0, 1)

    def decode_rows(rows: list[tuple[int, int, int, bool]]) -> list[int]:
        """Decode ``rows`` (token, pos, seq, wants logits) in batches of 512; the argmax of each wanted row."""
        out: list[int] = []
        for i in range(0, len(rows), 512):
            part = rows[i : i + 512]
            llama_decode_rows(lc, bctx, batch, part)
            wanted = sum(1 for r in part if r[3])
            if wanted:
                logits = np.ctypeslib.as_array(lc.llama_get_logits(bctx), shape=(wanted, vocab))
                out += logits.argmax(axis=-1).tolist()
        return out

    def run_many(prompts: list[list[int]], n: int) -> int:
        lc.llama_memory_clear(bmem, True)
        rows = [(t, i, s, i == len(p) - 1) for s, p in enumerate(prompts) for i, t in enumerate(p)]
        last = decode_rows(rows)
        for step in range(1, n):
            rows = [(t, len(p) + step - 1, s, True) for s, (p, t) in enumerate(zip(prompts, last, strict=True))]
            last = decode_rows(rows)
        return n * len(prompts)

    try:
        return anchor_figures(run, ids, n, run_many)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(bctx)
        lc.llama_free(ctx)
        lc.llama_model_free(model)


def on_own_thread(fn: Any, *args: Any) -> Any:
    """Run ``fn`` on a thread of its own, as the aiaas engines run llama.cpp. Called from Python's main thread,
    llama.cpp decoded 2-3x slower here (6-11 vs 20 tok/s without torch imported, 2-8 vs 15-21 with it), which
    made the anchor meaningless."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def in_child(job: dict[str, Any]) -> dict[str, float]:
    """Run one row of the table (``job["name"]``) in a fresh Python process. An anchor's process never imports
    torch (only llama_cpp and numpy) and decodes on a thread of its own, as llama.cpp's own users run it. Each
    aiaas engine gets a process of its own too: after the llamacpp engine had run in the same process, the torch
    engine decoded 12-40 % slower (15.6 against 17.7 tok/s, 63 against 85 at 16 streams). The cause is not
    known: torch's wheel ships ``libgomp.so.1`` under the system library's soname, so llama.cpp and torch may
    share one OpenMP runtime (and importing torch alone did not slow llama.cpp, measured 2026-12-04)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child"], input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{job['name']} failed: {out.stderr[-2000:]}")
    res: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def measure_aiaas(job: dict[str, Any]) -> dict[str, float]:
    """The figures of an aiaas engine (``job["name"]``: aiaas-llamacpp, torch-int8 or torch-fp32)."""
    from aiaas.llm import llamacpp_engine
    from aiaas.llm.queue_engine import EngineLimits

    engine: Engine
    limits = EngineLimits(
        threads=job["threads"], busy_streams=job["busy_streams"], max_num_seqs=16, max_num_tokens=8192
    )
    if job["name"] == "aiaas-llamacpp":
        engine = llamacpp_engine.LlamaCppEngine(Path(job["gguf"]), tokenizer_dir=Path(job["hf"]), limits=limits)
    else:
        from aiaas.llm.torch_engine import TorchEngine

        quantize = "int8" if job["name"] == "torch-int8" else "none"
        engine = TorchEngine(Path(job["hf"]), limits=limits, quantize=quantize)
    engine.start()
    try:
        return asyncio.run(measure_engine(engine, argparse.Namespace(tokens=job["tokens"])))
    finally:
        engine.close()


def child_main() -> None:
    job = json.loads(sys.stdin.read())
    if job["name"] in ("llama.cpp-c", "llama.cpp"):
        fn = measure_llamacpp_c if job["name"] == "llama.cpp-c" else measure_llamacpp_anchor
        res = on_own_thread(fn, Path(job["gguf"]), job["ids"], job["threads"], job["tokens"])
        assert "torch" not in sys.modules, "the anchor process must not import torch"
    else:
        res = measure_aiaas(job)
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--hf", type=Path, required=True, help="the HF directory converted from the GGUF (aiaas.llm.gemma)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--busy-streams",
        type=int,
        default=0,
        help="the engines' busy_streams (0: decode on --threads at every load; the bench has no HTTP path)",
    )
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (each row once per round); figures are medians")
    ap.add_argument("--backends", default="llama.cpp-c,llama.cpp,aiaas-llamacpp,torch-int8,torch-fp32")
    ap.add_argument("--anchor", default="llama.cpp-c", help="the row the ratios are taken against")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from aiaas.llm import llamacpp_engine

    tok = AutoTokenizer.from_pretrained(str(args.hf))
    ids = anchor_prompts(tok)
    print(
        f"start {time.strftime('%H:%M:%S')} UTC, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    have_lc = llamacpp_engine.available()
    names = [n for n in args.backends.split(",") if n]
    if not have_lc:
        for name in [n for n in names if n in ("llama.cpp-c", "llama.cpp", "aiaas-llamacpp")]:
            print(f"{name} skipped: {llamacpp_engine.INSTALL_HINT}")
            names.remove(name)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for rep in range(args.repeat):
        for name in names if rep % 2 == 0 else names[::-1]:  # every other round in reverse: no row always first
            t0 = time.perf_counter()
            job = {"name": name, "gguf": str(args.gguf), "hf": str(args.hf), "ids": ids, "threads": args.threads}
            job.update(tokens=args.tokens, busy_streams=args.busy_streams)
            runs[name].append(in_child(job))
            print(f"round {rep + 1} {name}: {runs[name][-1]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    print(f"end {time.strftime('%H:%M:%S')} UTC, load average {os.getloadavg()[0]:.1f}", flush=True)
    report(rows, args)


def _cell(
    r: dict[str, float], anchor: dict[str, float] | None, key: str, width: int, scale: float = 1.0, lower: bool = False
) -> str:
    v = r[key] * scale
    if anchor is None:
        return f"{v:>{width}.1f}"
    ratio = (anchor[key] / r[key]) if lower else (r[key] / anchor[key])
    return f" {f'{v:.1f} ({ratio:.2f}x)':>{width - 1}}"  # a space between cells even when one overflows


def report(rows: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    name_of = args.anchor if args.anchor in rows else "llama.cpp"
    anchor = rows.get(name_of)
    print(
        f"\nGemma-3-270M Q4_K_M, greedy, {args.tokens} new tokens, threads {args.threads}; "
        f"ratio = x {name_of if anchor else 'nothing (no anchor ran)'} (same run); medians of {args.repeat} round(s)"
    )
    head = f"{'backend':<16}{'decode tok/s':>14}{'TTFT 512 ms':>13}{'4 streams':>11}{'16 streams':>12}{'16 / 1':>8}"
    print(head)
    for name, r in rows.items():
        ref = None if name.startswith("llama.cpp") or name == name_of else anchor
        print(
            f"{name:<16}{_cell(r, ref, 'decode', 14)}{_cell(r, ref, 'ttft512', 13, 1e3, lower=True)}"
            f"{_cell(r, ref, 'agg4', 11)}{_cell(r, ref, 'agg16', 12)}{r['agg16'] / r['decode']:>8.1f}"
        )
    for name, r in rows.items():
        if "ttft512_prefix" in r:
            print(
                f"{name}: prefix cache: TTFT of a 512-token prompt {r['ttft512'] * 1e3:.0f} ms -> "
                f"{r['ttft512_prefix'] * 1e3:.0f} ms with its first 496 tokens cached "
                f"({r['ttft512'] / r['ttft512_prefix']:.1f}x); "
                f"chunked prefill: a running stream's inter-token gap while a 2,048-token prompt is admitted: "
                f"max {r['gap_max_ms']:.0f} ms, p50 {r['gap_p50_ms']:.0f} ms"
            )
    print(f"(TTFT ratio = {name_of} / backend: > 1 is faster)")


if __name__ == "__main__":
    child_main() if sys.argv[1:] == ["--child"] else main()
