"""Rotary tables for the torch engine, applied in place to a Hugging Face causal LM.

A decode step of Gemma-3-270M on CPU (profiled in docs/llm.md) spent ~4 % recomputing the rotary sin/cos of the
new positions, so ``cache_rotary`` computes the rotary embedding's cos/sin for positions ``0..max_len-1`` once,
with the module's own ``forward`` (so any scaling it applies is kept), and each step indexes the table by
``position_ids``. Elementwise the same float32 operations as before: the tables hold the same numbers. Only for
the ``default`` rope type (dynamic types change their frequencies with the sequence length); positions past the
table fall back to the module.
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
