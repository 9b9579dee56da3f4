"""What one multi-sequence ``llama_decode`` step costs against a one-sequence step, in one run: the ceiling of
any llama.cpp engine's N-stream / 1-stream ratio on this machine and GGUF.

Each case builds a llama.cpp context (through llama-cpp-python's C bindings, no torch), reads N short prompts
(one sequence each), then times decode steps of N rows (one token per sequence) -- the step the ``llamacpp``
engine runs at N streams. Per case: the median wall time of a step and the median CPU time of the calling
thread (with ``--threads 1`` that is the step's work, whatever else the machine runs: read that column on a
shared host), and the N-row step's throughput as a ratio to the 1-row step's.

Cases (``--cases``): ``engine`` = the aiaas engine's context (one unified cache, full-size sliding-window
layers, 20 sequence slots, flash attention as llama.cpp picks it); ``default`` = llama.cpp's default layout
(a stream of cells per sequence); ``no-fa`` = the engine's with flash attention off; ``engine+2k`` = the
engine's with a kept 2,048-token sequence in the cache (a cached prefix: every row's attention spans its cells);
``one-logits`` = the engine's with logits for one row only (the output projection, 262144 x 640 in Gemma-3-270M,
computed once instead of N times: what the per-row logits cost).

    PYTHONPATH=.:<llama_cpp> nice .venv/bin/python bench/llamacpp_step.py --gguf G.gguf --threads 1
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_real import llama_decode_rows  # bench/ is on sys.path: this script runs as bench/llamacpp_step.py

CASES = ("engine", "default", "no-fa", "engine+2k", "one-logits")


def measure(lc: Any, model: Any, case: str, rows: int, args: argparse.Namespace) -> tuple[float, float]:
    """Median (wall, thread CPU) seconds of a decode step of ``rows`` sequences in context ``case``."""
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 32768, 528, 528
    cp.n_seq_max = cp.n_outputs_max = 20
    cp.n_threads = cp.n_threads_batch = args.threads
    if case != "default":
        cp.kv_unified, cp.swa_full = True, True  # as aiaas.llm.llamacpp_engine sets them
    if case == "no-fa":
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = lc.llama_init_from_model(model, cp)
    batch = lc.llama_batch_init(528, 0, 1)
    try:

        def decode(items: list[tuple[int, int, int, bool]]) -> None:
            llama_decode_rows(lc, ctx, batch, items)

        if case == "engine+2k":
            for start in range(0, 2048, 512):
                decode([(100 + (start + j) % 1000, start + j, 19, j == 511) for j in range(512)])
        plen = 12
        for s in range(rows):
            decode([(200 + s + j, j, s, j == plen - 1) for j in range(plen)])
        walls, cpus = [], []
        for step in range(args.steps + 1):
            items = [(300 + s + step, plen + step, s, case != "one-logits" or s == rows - 1) for s in range(rows)]
            t0, c0 = time.perf_counter(), time.thread_time()
            decode(items)
            if step:  # the first step is a warm-up
                walls.append(time.perf_counter() - t0)
                cpus.append(time.thread_time() - c0)
        return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=16, help="sequences decoded together (N)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per case (medians)")
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    import logging
    import os

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its log callback prints every load line
    import llama_cpp as lc

    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(args.gguf.encode(), lc.llama_model_default_params())
    print(f"start {time.strftime('%H:%M:%S')} UTC, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"threads {args.threads}, {args.rows} rows vs 1 row, medians of {args.steps} steps")
    head = f"{'case':<12}{'1 row ms':>10}{'cpu ms':>9}{f'{args.rows} rows ms':>12}{'cpu ms':>9}"
    print(f"{head}{'ratio':>8}{'cpu ratio':>11}")
    with ThreadPoolExecutor(1) as pool:  # llama.cpp on a thread of its own, as the engine runs it
        for case in args.cases.split(","):
            if case not in CASES:
                raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
            w1, c1 = pool.submit(measure, lc, model, case, 1, args).result()
            wn, cn = pool.submit(measure, lc, model, case, args.rows, args).result()
            n = args.rows
            print(
                f"{case:<12}{w1 * 1e3:>10.1f}{c1 * 1e3:>9.1f}{wn * 1e3:>12.1f}{cn * 1e3:>9.1f}"
                f"{n * w1 / wn:>8.2f}{n * c1 / cn:>11.2f}",
                flush=True,
            )
    print(f"end {time.strftime('%H:%M:%S')} UTC, load average {os.getloadavg()[0]:.1f}")
    print(f"(ratio = {args.rows}-row step throughput / 1-row step throughput: the most N streams can gain)")
    lc.llama_model_free(model)


if __name__ == "__main__":
    main()
