"""Prefix caching for the torch engine: the KV cache of recent prompts, found again by hashes of token blocks.

A prompt's keys and values, once prefilled, are kept (cloned, per layer ``[1, kv_heads, n, head_dim]``) for its
whole blocks of ``block`` tokens. Every block boundary is indexed by a chained hash (block k's hash covers
blocks 0..k, as vLLM's automatic prefix caching does), so a new prompt finds the longest cached prefix with one
dictionary lookup per block, longest first; the tokens are compared before a hit is used (no hash collision
can change the text). Memory is bounded in tokens (``max_tokens``); least recently used prompts go first.

A hit hands back views of the kept tensors for the first ``n`` tokens -- at most the prompt's length minus one,
since the last prompt token must run through the model to give the first generated token's logits.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), [1, kv_heads, tokens, head_dim]


@dataclass(slots=True)
class _Entry:
    tokens: list[int]
    kv: KV
    hashes: list[int]


class PrefixCache:
    def __init__(self, max_tokens: int, block: int = 16) -> None:
        if max_tokens < 0 or block < 1:
            raise ValueError("prefix cache: max_tokens must be >= 0 and block >= 1")
        self.max_tokens = max_tokens  # 0 = off
        self.block = block
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._index: dict[int, set[int]] = {}  # chained block hash -> ids of the entries holding that prefix
        self._ids = itertools.count()
        self.tokens = 0  # tokens held
        self.hits = 0
        self.tokens_reused = 0

    def _hashes(self, ids: list[int], limit: int) -> list[int]:
        out: list[int] = []
        h = 0
        b = self.block
        for k in range(max(limit, 0) // b):
            h = hash((h, tuple(ids[k * b : (k + 1) * b])))
            out.append(h)
        return out

    def lookup(self, ids: list[int]) -> tuple[int, KV] | None:
        """The longest cached prefix of ``ids[:-1]`` in whole blocks: (tokens, per-layer views), or None."""
        if not self._entries:
            return None
        hashes = self._hashes(ids, len(ids) - 1)
        for k in range(len(hashes) - 1, -1, -1):
            n = (k + 1) * self.block
            eid = self._find(hashes[k], ids, n)
            if eid is None:
                continue
            entry = self._entries[eid]
            self._entries.move_to_end(eid)
            self.hits += 1
            self.tokens_reused += n
            return n, [(key[:, :, :n], value[:, :, :n]) for key, value in entry.kv]
        return None

    def store(self, ids: list[int], kv_of: Callable[[int], KV]) -> None:
        """Keep the whole blocks of prompt ``ids``; ``kv_of(n)`` gives its first ``n`` tokens' keys and values
        (copied here: the engine's cache tensors are replaced at every step)."""
        n = len(ids) // self.block * self.block
        if n == 0 or n > self.max_tokens:
            return
        hashes = self._hashes(ids, n)
        held = self._find(hashes[-1], ids, n)
        if held is not None:
            self._entries.move_to_end(held)  # already held (as this prompt or a longer one)
            return
        kv = [(key.clone(), value.clone()) for key, value in kv_of(n)]
        eid = next(self._ids)
        self._entries[eid] = _Entry(list(ids[:n]), kv, hashes)
        for h in hashes:
            self._index.setdefault(h, set()).add(eid)
        self.tokens += n
        while self.tokens > self.max_tokens:
            self._evict()

    def _evict(self) -> None:
        eid, entry = self._entries.popitem(last=False)
        self.tokens -= len(entry.tokens)
        for h in entry.hashes:
            holders = self._index[h]
            holders.discard(eid)
            if not holders:
                del self._index[h]

    def _find(self, h: int, ids: list[int], n: int) -> int | None:
        """An entry whose first ``n`` tokens (chained hash ``h``) are ``ids[:n]``."""
        for eid in self._index.get(h, ()):
            if self._entries[eid].tokens[:n] == ids[:n]:
                return eid
        return None

    def __len__(self) -> int:
        return len(self._entries)
