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
activation quantization on the same kernel, for two elementwise operations per call.

What each mode replaces, and what it costs. Held-out perplexity of Gemma-3-270M on 2,048 tokens of this
repository's own prose (``bench/llm_quality.py``; float32 96.92; "full" = one forward of 256 tokens, as prefill
runs; per-row scaling on):

| mode | replaced | perplexity vs float32 |
|---|---|---|
| ``int8`` (default) | output projection (168M of the 268M parameters) | +1.4 % |
| ``int8-attention`` | + q/k/v (fused, ``aiaas.llm.fuse``) and o projections | +7.5 % |
| (not offered) | + MLP gate/up | +4.7 % over ``int8`` with o |

Without the per-row scaling the output projection alone cost +3.5 % and the old default (output + attention)
+20.8 %. The MLP stays float32 in every mode; so do norms, attention itself and the sampler.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

QUANTIZE_MODES = ("none", "int8", "int8-attention")


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
    replaced. CPU only: on another device the int8 modes raise (the int8 kernels here are CPU kernels)."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)}, got {mode!r}")
    if mode == "none":
        return 0
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"quantize={mode!r} runs on CPU only (the model is on {device}); use quantize: none")
    if "fbgemm" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "fbgemm"
    names = int8_targets(model, attention=mode == "int8-attention")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, RowScaledInt8Linear(getattr(parent, child)))
    return len(names)


def int8_targets(model: Any, attention: bool = False) -> list[str]:
    """Names of the linear layers an int8 mode replaces: the output projection, and with ``attention`` every
    attention projection too."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, module in model.named_modules():
        if type(module) is not nn.Linear:
            continue
        in_attention = ".self_attn." in f".{name}." or ".attn." in f".{name}."
        if module is out or (attention and in_attention):
            names.append(name)
    return names
