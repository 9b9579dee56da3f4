"""Per-row sampling over a batch of logits: every sequence keeps its own temperature, top-k, top-p,
penalties, seed and logprobs request, so one batch can mix greedy and sampled, seeded and unseeded requests.

Method: the logits come to the CPU once per call (a CUDA tensor is copied, a CPU float32 one -- llama.cpp's own
buffer -- is only viewed, never written) and each row is handled by vectorised numpy in O(V), with no sort of
the vocabulary and no torch op on it: torch's CPU ops at V = 262,144 (Gemma) cost ~10-30 ms per row
(``multinomial`` 9.5 ms, ``sort`` 29 ms) and take OpenMP barriers with more than one thread.

* greedy: ``argmax``.
* sampled: weights ``exp((x - max) / t)`` and an inverse-CDF draw with one uniform number from the row's own
  ``torch.Generator`` (seeded rows; on the CPU) or torch's global one: block sums, then a cumulative sum inside
  one block. (So a seed gives other tokens than before this module drew its numbers this way.)
* top-k: kept = every logit >= the k-th largest (ties kept, as before), which ``np.partition`` finds among
  the few logits >= the k-th largest of the maxima of 1,024-logit blocks (a lower bound of it).
* top-p (after top-k, on the top-k-renormalised distribution): the smallest prefix of the sorted distribution
  whose mass reaches p. Only a candidate set is sorted: the tokens of weight >= Z / 256 (at most 256 of them,
  Z the normaliser); if their mass reaches p the nucleus is among them, else the bar is lowered x8 and retried;
  a sort of all the non-zero weights is the last resort (flat distributions).
* penalties: counts are a sparse dict per row, applied on a copy of the row at the counted ids only.
* logprobs: ``log_softmax`` of the penalised logits before temperature: the chosen token's, and the k best.

Measured (``OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/llm_sampling.py``: 2-core shared host, V = 262,144,
1 torch thread, ms per call for 1 / 16 rows, the torch code this replaced in brackets): greedy 0.05 / 2.0
(0.4 / 10); temperature 1: 0.7 / 14 (8.6 / 157); temperature 0.7 + top-p 0.9: 1.0 / 19 (39 / 695); top-k 40:
0.3 / 5 (12 / 183); greedy + 2 logprobs: 1.1 / 17 (2.4 / 43); presence penalty: 1.2 / 16 (12 / 213). The floor
of a sampled row without top-k, and of logprobs, is numpy's float32 ``exp`` over the vocabulary (~0.4 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from aiaas.llm.base import SamplingParams, TokenOut

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Ids = npt.NDArray[np.intp]

BLOCK = 1024  # inverse-CDF draw over the vocabulary: sums of blocks, then a cumulative sum inside one block
NUCLEUS_FIRST = 256  # top-p: the first candidate set is the tokens of weight >= Z / NUCLEUS_FIRST
NUCLEUS_GROWTH = 8


@dataclass(slots=True)
class RowState:
    """Sampling state of one sequence that survives across steps."""

    params: SamplingParams
    generator: torch.Generator | None = None  # seeded sequences only (CPU: the draws are made on the CPU)
    counts: dict[int, int] | None = None  # generated token -> count, for presence/frequency penalties
    vocab: int = 0  # counted ids are 0 <= id < vocab

    @classmethod
    def create(cls, params: SamplingParams, vocab: int, device: torch.device | None = None) -> RowState:
        """``device`` is where the engine's logits live; sampling state is on the CPU whatever it is."""
        gen = None
        if params.seed is not None and not params.greedy:
            gen = torch.Generator()
            gen.manual_seed(int(params.seed) & 0x7FFF_FFFF_FFFF_FFFF)
        return cls(params, gen, {} if params.penalised else None, vocab)

    def observe(self, token: int) -> None:
        if self.counts is not None and 0 <= token < self.vocab:
            self.counts[token] = self.counts.get(token, 0) + 1


def sample(logits: torch.Tensor, rows: list[RowState]) -> list[TokenOut]:
    """Choose one token per row of ``logits`` ([B, V]) and report logprobs where asked."""
    batch = _as_numpy(logits)
    out: list[TokenOut] = []
    with np.errstate(over="ignore", invalid="ignore"):  # huge logits: x - max may overflow to -inf (weight 0)
        for x, r in zip(batch, rows, strict=True):
            x = _penalised(x, r)
            p = r.params
            if p.greedy:
                tok = int(np.argmax(x))
            else:
                u = float(torch.rand(1, generator=r.generator))  # one draw per token, from the row's stream
                tok = _sample_row(x, p, u)
            t = TokenOut(tok)
            if p.logprobs is not None:
                _add_logprobs(t, x, p.logprobs)
            out.append(t)
            r.observe(tok)
    return out


def _as_numpy(logits: torch.Tensor) -> F32:
    """[B, V] float32 on the CPU: a view of a CPU float32 tensor (not copied, never written), else one copy."""
    t = logits.detach()
    if t.device.type != "cpu" or t.dtype != torch.float32:
        t = t.float().cpu()
    return t.numpy()


def _penalised(x: F32, r: RowState) -> F32:
    """The row with presence/frequency penalties subtracted at the generated ids (on a copy)."""
    if not r.counts:
        return x
    ids = np.fromiter(r.counts.keys(), dtype=np.intp, count=len(r.counts))
    n = np.fromiter(r.counts.values(), dtype=np.float32, count=len(r.counts))
    x = x.copy()
    x[ids] -= np.float32(r.params.frequency_penalty) * n + np.float32(r.params.presence_penalty)
    return x


def _sample_row(x: F32, p: SamplingParams, u: float) -> int:
    top = float(x.max())
    if not math.isfinite(top):  # no distribution to sample (an all -inf row, +inf or NaN): the argmax
        return int(np.argmax(x))
    ids, w = _support(x, p, top)
    i = _draw(w, u)
    return i if ids is None else int(ids[i])


def _support(x: F32, p: SamplingParams, top: float) -> tuple[Ids | None, F32 | F64]:
    """The tokens row ``x`` may draw and their unnormalised probabilities ``exp((x - top) / t)``: (ids, weights),
    ids None = the whole vocabulary in order. With top-p the kept prefix, most likely first."""
    v = x.shape[0]
    t = p.temperature
    if 0 < p.top_k < v:
        ids = _top_ids(x, p.top_k)
        w64 = np.exp((x[ids].astype(np.float64) - top) / t)
        return (ids, w64) if p.top_p >= 1.0 else _nucleus(ids, w64, float(w64.sum()), p.top_p)
    w = np.subtract(x, np.float32(top))
    if t != 1.0:
        w /= np.float32(t)
    np.exp(w, out=w)
    if p.top_p >= 1.0:
        return None, w
    z = float(w.sum())  # float32 pairwise sum: relative error ~1e-7, as the reference's own softmax
    bar = z / NUCLEUS_FIRST
    while True:  # candidates: weight >= bar (at most z / bar of them); enough once their mass reaches p
        ids = np.flatnonzero(w >= bar) if bar * v >= z else np.flatnonzero(w > 0)
        w64 = w[ids].astype(np.float64)
        if bar * v < z or float(w64.sum()) >= p.top_p * z:
            return _nucleus(ids, w64, z, p.top_p)
        bar /= NUCLEUS_GROWTH


def _top_ids(x: F32, k: int) -> Ids:
    """The ids of every logit >= the k-th largest (the k largest and their ties), ascending; 0 < k < V."""
    v = x.shape[0]
    nb = v // BLOCK
    if k <= nb:  # k blocks have a maximum >= the k-th largest block maximum: a lower bound, few logits above it
        bound = np.partition(x[: nb * BLOCK].reshape(nb, BLOCK).max(axis=1), nb - k)[nb - k]
        cand = np.flatnonzero(x >= bound)
        if cand.shape[0] >= k:  # (not so with NaN)
            vals = x[cand]
            kept: Ids = cand[vals >= np.partition(vals, vals.shape[0] - k)[vals.shape[0] - k]]
            return kept
    return np.flatnonzero(x >= np.partition(x, v - k)[v - k])


def _nucleus(ids: Ids, w: F64, z: float, top_p: float) -> tuple[Ids, F64]:
    """Of candidates ``ids`` (weights ``w``, normaliser ``z``, holding the nucleus), the smallest prefix of the
    sorted distribution whose mass reaches ``top_p`` (always the most likely token), most likely first."""
    order = np.argsort(-w, kind="stable")
    ids, w = ids[order], w[order]
    before = np.cumsum(w) - w  # mass of the tokens ranked before each one
    n = max(1, int(np.searchsorted(before, top_p * z, side="left")))
    return ids[:n], w[:n]


def _draw(w: F32 | F64, u: float) -> int:
    """Index i with probability ``w[i] / w.sum()`` for ``u`` uniform in [0, 1) (never a zero weight)."""
    n = w.shape[0]
    if n <= 4 * BLOCK:
        cum = np.cumsum(w, dtype=np.float64)
        return _search(cum, u * float(cum[-1]))
    nb = n // BLOCK
    sums = np.empty(nb + 1)
    sums[:nb] = w[: nb * BLOCK].reshape(nb, BLOCK).sum(axis=1)
    sums[nb] = w[nb * BLOCK :].sum()
    cum = np.cumsum(sums)
    target = u * float(cum[-1])
    b = _search(cum, target)
    inner = np.cumsum(w[b * BLOCK : (b + 1) * BLOCK], dtype=np.float64)
    return b * BLOCK + _search(inner, target - (float(cum[b - 1]) if b else 0.0))


def _search(cum: F64, target: float) -> int:
    """The first index whose cumulative weight exceeds ``target``, clamped to the positive weights."""
    i = int(np.searchsorted(cum, max(target, 0.0), side="right"))
    if i >= cum.shape[0]:  # rounding put the target at the top: the last positive weight
        i = int(np.searchsorted(cum, cum[-1], side="left"))
    return i


def _add_logprobs(t: TokenOut, x: F32, k: int) -> None:
    """The chosen token's logprob and the ``k`` best (id, logprob), from ``log_softmax(x)``."""
    top = float(x.max())
    lse = top + math.log(float(np.exp(x - np.float32(top)).sum()))
    t.logprob = float(x[t.token_id]) - lse
    if k > 0:
        ids = np.arange(x.shape[0]) if k >= x.shape[0] else _top_ids(x, k)
        ids = ids[np.argsort(-x[ids], kind="stable")][:k]
        t.top = [(int(i), float(x[i]) - lse) for i in ids]
