"""What the torch engine's ``quantize`` modes cost in accuracy: held-out perplexity against float32, in one run.

The held-out text is this repository's own prose (``docs/*.md`` and ``ARCHITECTURE.md``, code blocks, tables and
headings removed): written for aiaas, so not in any model's training data, and long enough (``--tokens``, 2,048
by default) that one token's luck does not move the figure by a percent, as it does on the catalog's five
sentences. Two ways of reading it, per mode:

* **prefill**: chunks of 256 tokens (BOS first) in one forward each -- how a prompt is read;
* **decode**: the first 16 tokens of a chunk in one forward, then one token per forward on the KV cache -- how
  generated tokens are produced, and the figure that says what a served stream's quality is.

    .venv/bin/python bench/llm_quality.py --hf HF_DIR [--modes none,int8] [--tokens 2048]

``HF_DIR``: the catalog's Gemma-3-270M Hugging Face directory (``python -m aiaas.llm.gemma HF_DIR`` writes it).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, at ``import torch`` (docs/llm.md)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from aiaas.llm.quant import QUANTIZE_MODES, quantize  # noqa: E402

CHUNK = 256  # tokens per prefill forward (BOS included)
PREFIX = 16  # decode reading: tokens read in one forward before token-by-token decoding starts


def held_out_text() -> str:
    parts = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "ARCHITECTURE.md"]:
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        keep = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("|", "#", "    "))]
        parts.append(" ".join(keep))
    return "\n".join(parts)


def chunks(tok: Any, n_tokens: int) -> list[torch.Tensor]:
    ids = tok(held_out_text(), add_special_tokens=False).input_ids[:n_tokens]
    if len(ids) < n_tokens:
        raise SystemExit(f"the held-out text has {len(ids)} tokens; ask for at most that many with --tokens")
    step = CHUNK - 1
    out = [torch.tensor([[tok.bos_token_id, *ids[i : i + step]]]) for i in range(0, len(ids), step)]
    return [c for c in out if c.shape[1] > 2 * PREFIX]


@torch.inference_mode()
def prefill_ppl(model: Any, texts: list[torch.Tensor]) -> float:
    nll, count = 0.0, 0
    for ids in texts:
        n = ids.shape[1] - 1
        nll += float(model(ids, labels=ids).loss) * n
        count += n
    return math.exp(nll / count)


@torch.inference_mode()
def decode_ppl(model: Any, texts: list[torch.Tensor]) -> float:
    from transformers import DynamicCache

    nll, count = 0.0, 0
    for ids in texts:
        cache = DynamicCache()
        logits = model(ids[:, :PREFIX], past_key_values=cache, use_cache=True).logits[0]
        logp = torch.log_softmax(logits, -1)
        for j in range(PREFIX - 1):
            nll -= float(logp[j, ids[0, j + 1]])
        count += PREFIX - 1
        last = logits[-1]
        for j in range(PREFIX, ids.shape[1]):
            nll -= float(torch.log_softmax(last, -1)[ids[0, j]])
            count += 1
            last = model(ids[:, j : j + 1], past_key_values=cache, use_cache=True).logits[0, -1]
    return math.exp(nll / count)


def load(hf: Path, mode: str, threads: int) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).eval()
    quantize(model, mode, threads=threads)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf", type=Path, required=True, help="a Hugging Face causal LM directory")
    ap.add_argument("--modes", default=",".join(QUANTIZE_MODES), help="comma-separated quantize modes")
    ap.add_argument("--tokens", type=int, default=2048, help="held-out tokens to score")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(QUANTIZE_MODES))
    if unknown:
        raise SystemExit(f"unknown --modes {unknown}: choose from {list(QUANTIZE_MODES)}")
    if "none" in modes:
        modes.remove("none")
    modes.insert(0, "none")  # the float32 baseline, measured in the same run
    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    texts = chunks(AutoTokenizer.from_pretrained(str(args.hf)), args.tokens)
    scored = sum(t.shape[1] - 1 for t in texts)
    print(f"held-out: {scored} scored tokens in {len(texts)} chunks of <= {CHUNK}; {args.threads} threads")
    print("| quantize | prefill ppl | vs float32 | decode ppl | vs float32 | seconds |\n|---|---|---|---|---|---|")
    base: tuple[float, float] | None = None
    for mode in modes:
        t0 = time.perf_counter()
        model = load(args.hf, mode, args.threads)
        pre, dec = prefill_ppl(model, texts), decode_ppl(model, texts)
        base = base or (pre, dec)
        rel = [f"{(v / b - 1) * 100:+.1f} %" for v, b in zip((pre, dec), base, strict=True)]
        print(f"| {mode} | {pre:.2f} | {rel[0]} | {dec:.2f} | {rel[1]} | {time.perf_counter() - t0:.0f} |", flush=True)
        del model


if __name__ == "__main__":
    main()
