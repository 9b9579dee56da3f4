"""Per-step sampling cost at Gemma's vocabulary: ``aiaas.llm.sampling.sample`` (numpy, O(V) per row) against
the torch implementation it replaced (the reference kept in ``tests/llm/test_sampling.py``), in the same run.

For B = 1 and 16 rows of V = 262,144 float32 logits (LM-like: normal noise, scale 2.5, plus a few tokens
10-15 above it, so top-p keeps a few tokens as real models mostly do), each mode is timed as the median wall
time of ``--repeat`` calls (fresh row states each call, made outside the timing) at 1 and 2 torch threads.
Modes: greedy; temperature 1.0; temperature 0.7 + top_p 0.9; temperature 0.7 + top_k 40; greedy + logprobs 2;
temperature 1.0 + presence penalty 0.5 (64 tokens generated before). Prints a markdown table of ms per call and
the old / new ratio. The new code makes no torch op on the vocabulary, so its times do not depend on torch's
thread count; the old one's do (OpenMP barriers: set OMP_WAIT_POLICY=PASSIVE on a shared host, as below).

    OMP_WAIT_POLICY=PASSIVE nice .venv/bin/python bench/llm_sampling.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this worktree's aiaas, not an installed one
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests" / "llm"))

from test_sampling import RefRow, ref_sample  # the torch implementation before the rewrite

from aiaas.llm.base import SamplingParams
from aiaas.llm.sampling import RowState, sample

VOCAB = 262_144
MODES: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0},
    "temperature 1.0": {"temperature": 1.0},
    "t 0.7 + top_p 0.9": {"temperature": 0.7, "top_p": 0.9},
    "t 0.7 + top_k 40": {"temperature": 0.7, "top_k": 40},
    "greedy + logprobs 2": {"temperature": 0.0, "logprobs": 2},
    "t 1.0 + presence 0.5": {"temperature": 1.0, "presence_penalty": 0.5},
}


def lm_like_logits(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, VOCAB, generator=g) * 2.5
    for row in x:
        ids = torch.randint(0, VOCAB, (4,), generator=g)
        row[ids] += torch.tensor([15.0, 13.5, 12.0, 10.0])
    return x


def ref_row(p: SamplingParams) -> RefRow:
    return RefRow.create(p, VOCAB, torch.device("cpu"))


def new_row(p: SamplingParams) -> RowState:
    return RowState.create(p, VOCAB)


def rows_for(make: Callable[[SamplingParams], Any], params: SamplingParams, batch: int) -> list[Any]:
    rows = [make(params) for _ in range(batch)]
    for r in rows:
        for tok in range(0, 64 * 997, 997):  # 64 generated tokens (they matter for the penalties only)
            r.observe(tok)
    return rows


def time_calls(
    fn: Callable[[torch.Tensor, list[Any]], object], make: Callable[[], list[Any]], x: torch.Tensor, repeat: int
) -> float:
    """Median ms of ``repeat`` calls of ``fn(x, rows)``, after one warm-up."""
    fn(x, make())
    times = []
    for _ in range(repeat):
        rows = make()
        t0 = time.perf_counter()
        fn(x, rows)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per figure (median)")
    args = ap.parse_args()
    print("| mode | rows | torch threads | old (torch) ms | new (numpy) ms | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 16):
            x = lm_like_logits(batch)
            for name, kw in MODES.items():
                p = SamplingParams(**kw)
                old = time_calls(ref_sample, lambda p=p, b=batch: rows_for(ref_row, p, b), x, args.repeat)
                new = time_calls(sample, lambda p=p, b=batch: rows_for(new_row, p, b), x, args.repeat)
                print(f"| {name} | {batch} | {threads} | {old:.2f} | {new:.2f} | {old / new:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
