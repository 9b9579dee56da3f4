"""Two decode-step savings on a Hugging Face causal LM, applied in place by the torch engine.

A decode step of Gemma-3-270M on CPU (profiled in docs/llm.md) spends half its time in 73 small quantized
linear calls and ~4 % recomputing the rotary sin/cos of the new positions. Both are overhead per call, not
arithmetic, so:

- ``cache_rotary``: the rotary embedding's cos/sin for positions ``0..max_len-1`` are computed once, with the
  module's own ``forward`` (so any scaling it applies is kept), and each step indexes the table by
  ``position_ids``. Elementwise the same float32 operations as before: the tables hold the same numbers.
  Only for the ``default`` rope type (dynamic types change their frequencies with the sequence length);
  positions past the table fall back to the module.
- ``fuse_qkv``: an attention block's q, k and v projections read the same hidden states; one linear with the
  three weights stacked replaces three calls (and, once quantized, three activation quantizations) by one. The
  attention code still calls ``q_proj``, ``k_proj`` and ``v_proj``: each is now a slice of the fused output,
  computed by whichever of the three is called first on a tensor and handed to the other two. With int8
  dynamic quantization (per-output-channel weights, one activation scale per call) the three slices are the
  same numbers as three separate int8 calls: the activation is the same tensor, so its scale is too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class CachedRotary(nn.Module):
    """A rotary embedding module whose ``forward(x, position_ids, ...)`` looks cos/sin up in tables (one per
    dtype, device and extra argument, e.g. Gemma 3's layer type)."""

    def __init__(self, inner: nn.Module, max_len: int) -> None:
        super().__init__()
        self.inner = inner
        self.max_len = max_len
        self._tables: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        key = (x.dtype, x.device, *args, *sorted(kwargs.items()))
        if position_ids.numel() and int(position_ids.max()) >= self.max_len:
            return self.inner(x, position_ids, *args, **kwargs)
        table = self._tables.get(key)
        if table is None:
            positions = torch.arange(self.max_len, device=position_ids.device).unsqueeze(0)
            cos, sin = self.inner(x, positions, *args, **kwargs)
            table = self._tables[key] = (cos[0], sin[0])
        return table[0][position_ids], table[1][position_ids]


def cache_rotary(model: nn.Module, max_len: int) -> int:
    """Wrap every default-type rotary embedding of ``model`` in ``CachedRotary``; returns how many."""
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child).__name__.endswith("RotaryEmbedding") and _default_rope(child):
                found.append((parent, name, child))
    for parent, name, child in found:
        setattr(parent, name, CachedRotary(child, max_len))
    return len(found)


def _default_rope(module: nn.Module) -> bool:
    kind = getattr(module, "rope_type", None)
    kinds = list(kind.values()) if isinstance(kind, dict) else [kind]
    return bool(kinds) and all(k == "default" for k in kinds)


class FusedQKV(nn.Module):
    """The stacked q/k/v projection of one attention block; ``parts`` hand out its three slices."""

    def __init__(self, q: nn.Linear, k: nn.Linear, v: nn.Linear) -> None:
        super().__init__()
        self.sizes = (q.out_features, k.out_features, v.out_features)
        bias = q.bias is not None
        self.proj = nn.Linear(q.in_features, sum(self.sizes), bias=bias, dtype=q.weight.dtype, device=q.weight.device)
        with torch.no_grad():
            self.proj.weight.copy_(torch.cat([q.weight, k.weight, v.weight], 0))
            if bias:
                self.proj.bias.copy_(torch.cat([q.bias, k.bias, v.bias], 0))
        self._input: torch.Tensor | None = None
        self._outputs: list[torch.Tensor | None] = [None, None, None]

    def part(self, i: int, x: torch.Tensor) -> torch.Tensor:
        out = self._outputs[i]
        if x is not self._input or out is None:  # a new input: compute all three, keep the other two
            self._input = x
            self._outputs = list(self.proj(x).split(self.sizes, dim=-1))
            out = self._outputs[i]
        assert out is not None
        self._outputs[i] = None
        if all(o is None for o in self._outputs):
            self._input = None  # all three taken: hold no activations between steps
        return out


class _Part(nn.Module):
    def __init__(self, fused: FusedQKV, i: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self._fused = [fused]  # a list, not an attribute: the fused module is registered once, as ``qkv``
        self.i = i
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fused[0].part(self.i, x)


def fuse_qkv(model: nn.Module) -> int:
    """Replace every attention block's ``q_proj``/``k_proj``/``v_proj`` (plain linears on the same input
    size, all with or all without bias) by slices of one ``qkv`` linear; returns how many blocks."""
    blocks = []
    for module in model.modules():
        projs = [getattr(module, n, None) for n in ("q_proj", "k_proj", "v_proj")]
        if not all(type(p) is nn.Linear for p in projs):
            continue
        q, k, v = projs
        assert isinstance(q, nn.Linear) and isinstance(k, nn.Linear) and isinstance(v, nn.Linear)
        if len({q.in_features, k.in_features, v.in_features}) == 1 and len({p.bias is None for p in (q, k, v)}) == 1:
            blocks.append((module, q, k, v))
    for module, q, k, v in blocks:
        fused = FusedQKV(q, k, v)
        module.qkv = fused
        for i, (name, lin) in enumerate((("q_proj", q), ("k_proj", k), ("v_proj", v))):
            setattr(module, name, _Part(fused, i, lin.in_features, lin.out_features))
    return len(blocks)
