"""Per-row sampling over a batch of logits: every sequence keeps its own temperature, top-k, top-p,
penalties, seed and logprobs request, so one batch can mix greedy and sampled, seeded and unseeded requests.

Work is only done for the rows that need it: a batch of greedy requests is one ``argmax``; sorting the
vocabulary (top-p) happens only for rows with ``top_p < 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aiaas.llm.base import SamplingParams, TokenOut


@dataclass(slots=True)
class RowState:
    """Sampling state of one sequence that survives across steps."""

    params: SamplingParams
    generator: torch.Generator | None = None  # seeded sequences only
    counts: torch.Tensor | None = None  # generated-token counts, for presence/frequency penalties

    @classmethod
    def create(cls, params: SamplingParams, vocab: int, device: torch.device) -> RowState:
        gen = None
        if params.seed is not None and not params.greedy:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(params.seed) & 0x7FFF_FFFF_FFFF_FFFF)
        counts = torch.zeros(vocab, dtype=torch.float32, device=device) if params.penalised else None
        return cls(params, gen, counts)

    def observe(self, token: int) -> None:
        if self.counts is not None and 0 <= token < self.counts.shape[0]:
            self.counts[token] += 1.0


def sample(logits: torch.Tensor, rows: list[RowState]) -> list[TokenOut]:
    """Choose one token per row of ``logits`` ([B, V], float32) and report logprobs where asked."""
    logits = logits.float()
    batch = logits.shape[0]
    out: list[TokenOut | None] = [None] * batch

    # presence / frequency penalties (on generated tokens, as OpenAI and vLLM apply them)
    pen = [i for i, r in enumerate(rows) if r.counts is not None]
    if pen:
        logits = logits.clone()
        for i in pen:
            r = rows[i]
            assert r.counts is not None
            logits[i] -= r.params.frequency_penalty * r.counts + r.params.presence_penalty * (r.counts > 0).float()

    want_lp = [i for i, r in enumerate(rows) if r.params.logprobs is not None]
    logprobs = torch.log_softmax(logits[want_lp], dim=-1) if want_lp else None

    greedy = [i for i, r in enumerate(rows) if r.params.greedy]
    chosen = torch.empty(batch, dtype=torch.long)
    if len(greedy) == batch:  # the common case: no row gather (a copy of [B, V]), one argmax
        chosen = logits.argmax(dim=-1).cpu()
    elif greedy:
        chosen[greedy] = logits[greedy].argmax(dim=-1).cpu()
    sampled = [i for i, r in enumerate(rows) if not r.params.greedy]
    if sampled:
        scores = logits[sampled]
        temps = torch.tensor([rows[i].params.temperature for i in sampled], dtype=scores.dtype, device=scores.device)
        scores = scores / temps.unsqueeze(-1)
        vocab = scores.shape[-1]
        top_ks = [rows[i].params.top_k for i in sampled]
        if any(0 < k < vocab for k in top_ks):
            ks = torch.tensor([k if 0 < k < vocab else vocab for k in top_ks], device=scores.device)
            kmax = int(ks.max())
            top_vals = scores.topk(kmax, dim=-1).values  # [b, kmax], descending
            thresh = top_vals.gather(-1, (ks - 1).clamp(max=kmax - 1).unsqueeze(-1))
            scores = scores.masked_fill(scores < thresh, float("-inf"))
        top_ps = [rows[i].params.top_p for i in sampled]
        if any(p < 1.0 for p in top_ps):
            p = torch.tensor(top_ps, dtype=scores.dtype, device=scores.device).unsqueeze(-1)
            sorted_scores, order = scores.sort(dim=-1, descending=True)
            cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
            drop = (cum - sorted_scores.softmax(dim=-1)) >= p  # keep the smallest prefix whose mass reaches p
            drop[:, 0] = False
            scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        probs = scores.softmax(dim=-1)
        for j, i in enumerate(sampled):
            chosen[i] = int(torch.multinomial(probs[j], 1, generator=rows[i].generator).item())

    ids = chosen.tolist()
    lp_rows = {i: n for n, i in enumerate(want_lp)}
    for i in range(batch):
        tok = ids[i]
        t = TokenOut(tok)
        n = lp_rows.get(i)
        if n is not None and logprobs is not None:
            row = logprobs[n]
            t.logprob = float(row[tok])
            k = rows[i].params.logprobs or 0
            if k > 0:
                vals, idx = row.topk(min(k, row.shape[-1]))
                t.top = list(zip(idx.tolist(), vals.tolist(), strict=True))
        out[i] = t
        rows[i].observe(tok)
    return [t for t in out if t is not None]
