"""Weight quantization for the torch LLM engine: int8 weights on torch's dynamic-int8 CPU kernels (FBGEMM).

Decoding is memory-bound: every new token reads every weight once. Measured here (2 cores, Gemma-3-270M's tied
262144 x 640 output projection, batch 1 / batch 16): float32 145 / 375 ms; ``torch.ops.aten._weight_int8pack_mm``
(weight-only int8) 158 / 861; int4 weight-only (``_weight_int4pack_mm_for_cpu``) 44 / 454; ``torch._int_mm`` is a
reference loop on CPU (113 ms for the output projection at batch 1); dynamic int8 (this module) 21-81 / 45-90 --
the only kernel that stays fast for a batch of decode rows, which is what continuous batching runs.

Dynamic int8 quantizes the activations per call, and on a CPU without VNNI (AVX2) FBGEMM keeps them to 7 bits
(``reduce_range``, so its 16-bit multiply-adds cannot saturate). One scale for a whole call is the weak point:
the rows of a prompt (or of a decode batch) differ in magnitude by orders, and the small ones lose their
precision. ``RowScaledInt8Linear`` divides each row by its own largest magnitude before the call and multiplies
the result back (a linear map commutes with a per-row scale), so every row uses the whole integer range: per-token
activation quantization on the same kernel, for two elementwise operations per call (the zero point stays one
per call).

What ``int8`` replaces: the output projection only (Gemma-3-270M: 168M of its 268M parameters; it shares its
weight with the input embedding, which stays a float lookup table). Held-out perplexity of Gemma-3-270M on 2,040
tokens of this repository's own prose (``bench/llm_quality.py``), read one token per forward as generation
runs: float32 95.80, ``int8`` 96.99 (+1.2 %); a variant mapping each row onto [-1, 1] with its midpoint measured
+2.9 %, so read the figure as +1-3 %. Also measured there and not offered: the attention projections too +4.6 %
(decode, 1,020 tokens) / +7.5 % (prefill, 2,040 tokens); the MLP's gate/up or down on top +2-8 % more. Without
the per-row scaling the output projection alone cost +3.5 % and the old default (output + attention) +20.8 %
read as a prompt. The MLP, norms, attention itself and the sampler stay float32.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

QUANTIZE_MODES = ("none", "int8")


class RowScaledInt8Linear(nn.Module):
    """``nn.Linear`` on FBGEMM's dynamic int8 kernel with per-row activation scaling (see the module doc):
    ``y = q(x / a) * a + b`` where ``a`` is each row's largest magnitude and ``q`` the bias-free int8 linear."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # torch.ao's eager-mode API is deprecated in favour of torchao, still shipped
            warnings.simplefilter("ignore")
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
            from torch.ao.quantization import per_channel_dynamic_qconfig

            plain = nn.Linear(linear.in_features, linear.out_features, bias=False)
            plain.weight = linear.weight  # a tied weight (the output projection's) is read, not moved
            plain.qconfig = per_channel_dynamic_qconfig  # type: ignore[assignment]
            self.q = DynamicLinear.from_float(plain)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-12)  # an all-zero row (padding) stays zero
        y: torch.Tensor = self.q(x / scale) * scale
        return y if self.bias is None else y + self.bias


def quantize(model: Any, mode: str) -> int:
    """Quantize ``model``'s linear layers in place (``mode`` in ``QUANTIZE_MODES``); returns how many were
    replaced. CPU only: on another device ``int8`` raises (the int8 kernels here are CPU kernels)."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)}, got {mode!r}")
    if mode == "none":
        return 0
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"quantize={mode!r} runs on CPU only (the model is on {device}); use quantize: none")
    if "fbgemm" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "fbgemm"
    names = int8_targets(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, RowScaledInt8Linear(getattr(parent, child)))
    return len(names)


def int8_targets(model: Any) -> list[str]:
    """Names of the linear layers ``int8`` replaces: the output projection (see the module doc for why only it)."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules() if type(module) is nn.Linear and module is out]
