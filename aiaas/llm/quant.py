"""Weight quantization for the torch LLM engine: ``quantize: int8`` puts every linear layer on 8-bit weights in
blocks of 32 (onnxruntime's ``MatMulNBits``, ``aiaas.llm.nbits``).

Decoding is memory-bound: every new token reads every weight once. Gemma-3-270M in float32 reads ~1.1 GB per
token; in 8 bits per weight (plus a scale and zero point per 32) ~0.3 GB.

Kernels measured here (2 cores, AVX2 without VNNI; ms per call, batch 1 / batch 16 rows). Gemma-3-270M's tied
262144 x 640 output projection: float32 145 / 375; ``MatMulNBits`` 8-bit 10-11 / 61-79; FBGEMM dynamic int8
(torch's ``quantize_dynamic``) 14-21 / 32-90; ``_weight_int8pack_mm`` (weight-only int8) 158 / 861;
``_weight_int4pack_mm_for_cpu`` 44 / 454; ``torch._int_mm`` a reference loop (113 at batch 1). A 640 -> 2048
MLP projection: float32 0.36 / 4.2, ``MatMulNBits`` 8-bit 0.21 / 1.9; at 512 rows (a prompt chunk) both ~23-26.

Accuracy, held-out perplexity of Gemma-3-270M on 2,040 tokens of this repository's own prose
(``bench/llm_quality.py``; float32 95.80), read as a prompt / as generated:

* ``int8`` (every linear layer 8-bit, blocks of 32): +0.7 % / +0.7 %. The GGUF's weights are Q8_0 (output),
  Q5_0 (q/k/v, gate/up) and Q4_K / Q6_K (o, down): blocks of 32 or finer, which 8 bits per block of 32
  re-quantize with an error of at most 1/510 of a block's range. What is lost is the activations' rounding to
  int8 per block of 32 inside the kernel, which is llama.cpp's own arithmetic on this CPU.
* 4 bits (``MatMulNBits`` 4-bit, blocks of 32) for the MLP's down projection: +8 %; for every projection but the
  output: +34 % (both with the output projection on FBGEMM, below, which alone gives +2.1 %). Not offered.
* FBGEMM's dynamic int8 keeps activations to 7 bits with one scale per call on a CPU without VNNI
  (``reduce_range``): on the output projection alone, with each row scaled to its own range, +1.2 % (decode)
  to +2.4 % (prefill), and +2.1-2.7 % with the 8-bit body; the attention projections on it +4.6-20.8 %. It is
  faster for 16 rows of the output projection (32 against 61-79 ms) but is not used: the accuracy target is 2 %.

Norms, attention itself, the embedding lookup and the sampler stay float32.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from aiaas.llm.nbits import BLOCK, NBitsLinear

QUANTIZE_MODES = ("none", "int8")


def quantize(model: Any, mode: str, threads: int = 1) -> int:
    """Quantize ``model``'s linear layers in place (``mode`` in ``QUANTIZE_MODES``); returns how many were
    replaced. ``threads``: intra-op threads of each quantized layer. CPU only: on another device ``int8``
    raises (the kernels here are CPU kernels)."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)}, got {mode!r}")
    if mode == "none":
        return 0
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"quantize={mode!r} runs on CPU only (the model is on {device}); use quantize: none")
    names = targets(model)
    for group in siblings(names):
        layers = NBitsLinear.siblings([model.get_submodule(n) for n in group], bits=8, threads=threads)
        for name, layer in zip(group, layers, strict=True):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
    return len(names)


def targets(model: Any) -> list[str]:
    """Names of the linear layers ``int8`` replaces: every ``nn.Linear`` whose input width is a whole number of
    blocks (a tied output projection too: its weight stays, as the input embedding's float lookup table)."""
    return [n for n, m in model.named_modules() if type(m) is nn.Linear and m.in_features % BLOCK == 0]


# layers that read the same input in the usual decoder blocks (Llama, Gemma, Qwen, Mistral naming): one session each
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def siblings(names: list[str]) -> list[list[str]]:
    """``names`` grouped: siblings under one parent (``SIBLINGS``) together, in their order; every other alone."""
    groups: list[list[str]] = []
    taken: set[str] = set()
    present = set(names)
    for name in names:
        if name in taken:
            continue
        parent, _, leaf = name.rpartition(".")
        group = [name]
        for family in SIBLINGS:
            if leaf in family:
                full = [f"{parent}.{x}" if parent else x for x in family]
                if all(f in present for f in full):
                    group = full
        groups.append(group)
        taken.update(group)
    return groups
