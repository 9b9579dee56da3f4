"""``aiaas.llm.sampling`` (numpy, O(V) per row) against the torch implementation it replaced, kept here as the
reference (``RefRow``, ``ref_sample``; ``bench/llm_sampling.py`` times both): the same greedy tokens, the same
kept sets and distributions for top-k / top-p / temperature / penalties, the same logprobs, seeded rows that do
not depend on their batch, and no NaN on degenerate rows."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from aiaas.llm import sampling
from aiaas.llm.base import SamplingParams, TokenOut
from aiaas.llm.sampling import RowState, sample

V_BIG = 262_144  # Gemma's vocabulary
GREEDY = {"temperature": 0.0}


# ---- the reference: the torch implementation before the numpy rewrite (unchanged but for the split in two) ----


@dataclass(slots=True)
class RefRow:
    params: SamplingParams
    generator: torch.Generator | None = None
    counts: torch.Tensor | None = None

    @classmethod
    def create(cls, params: SamplingParams, vocab: int, device: torch.device) -> RefRow:
        gen = None
        if params.seed is not None and not params.greedy:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(params.seed) & 0x7FFF_FFFF_FFFF_FFFF)
        counts = torch.zeros(vocab, dtype=torch.float32, device=device) if params.penalised else None
        return cls(params, gen, counts)

    def observe(self, token: int) -> None:
        if self.counts is not None and 0 <= token < self.counts.shape[0]:
            self.counts[token] += 1.0


def ref_probs(logits: torch.Tensor, rows: list[RefRow]) -> tuple[torch.Tensor, list[int], torch.Tensor | None]:
    """The penalised logits, the sampled rows, and their final distributions (the first half of the old code)."""
    logits = logits.float()
    pen = [i for i, r in enumerate(rows) if r.counts is not None]
    if pen:
        logits = logits.clone()
        for i in pen:
            r = rows[i]
            assert r.counts is not None
            logits[i] -= r.params.frequency_penalty * r.counts + r.params.presence_penalty * (r.counts > 0).float()
    sampled = [i for i, r in enumerate(rows) if not r.params.greedy]
    if not sampled:
        return logits, sampled, None
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
    return logits, sampled, scores.softmax(dim=-1)


def ref_sample(logits: torch.Tensor, rows: list[RefRow]) -> list[TokenOut]:
    batch = logits.shape[0]
    out: list[TokenOut | None] = [None] * batch
    logits, sampled, probs = ref_probs(logits, rows)
    want_lp = [i for i, r in enumerate(rows) if r.params.logprobs is not None]
    logprobs = torch.log_softmax(logits[want_lp], dim=-1) if want_lp else None
    greedy = [i for i, r in enumerate(rows) if r.params.greedy]
    chosen = torch.empty(batch, dtype=torch.long)
    if len(greedy) == batch:
        chosen = logits.argmax(dim=-1).cpu()
    elif greedy:
        chosen[greedy] = logits[greedy].argmax(dim=-1).cpu()
    if probs is not None:
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


# ---- helpers ----


def ref_dist(row: torch.Tensor, params: SamplingParams, seen: Sequence[int] = ()) -> np.ndarray:
    """The reference's distribution for one sampled row, after observing ``seen``."""
    r = RefRow.create(params, row.shape[-1], torch.device("cpu"))
    for tok in seen:
        r.observe(tok)
    _, _, probs = ref_probs(row.unsqueeze(0), [r])
    assert probs is not None
    return probs[0].double().numpy()


def new_dist(row: torch.Tensor, params: SamplingParams, seen: Sequence[int] = ()) -> np.ndarray:
    """The new code's distribution for one sampled row (``_support``: kept ids and weights), after ``seen``."""
    r = RowState.create(params, row.shape[-1])
    for tok in seen:
        r.observe(tok)
    x = sampling._penalised(row.numpy(), r)
    ids, w = sampling._support(x, params, float(x.max()))
    out = np.zeros(row.shape[-1])
    out[slice(None) if ids is None else ids] = w / w.sum(dtype=np.float64)
    return out


def logits_for(vocab: int, seed: int, scale: float = 3.0, rows: int = 1) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * scale


def chi2(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic and degrees of freedom; a count outside the support is infinitely unlikely."""
    n = counts.sum()
    if (counts[probs == 0] > 0).any():
        return math.inf, 0
    keep = probs > 0
    expected = probs[keep] * n
    return float(((counts[keep] - expected) ** 2 / expected).sum()), int(keep.sum()) - 1


def chi2_bound(df: int) -> float:
    return df + 8.0 * math.sqrt(2.0 * max(df, 1))  # far out in the tail (~6 sigma): fails only on a real mismatch


def draw_many(row: torch.Tensor, params: SamplingParams, n: int) -> np.ndarray:
    """Token counts of ``n`` draws: one call over ``n`` copies of ``row``, unseeded rows (torch's global RNG)."""
    rows = [RowState.create(params, row.shape[-1]) for _ in range(n)]
    toks = [t.token_id for t in sample(row.unsqueeze(0).repeat(n, 1), rows)]
    return np.bincount(toks, minlength=row.shape[-1])


# ---- tests ----


def test_greedy_is_the_argmax_of_each_row() -> None:
    logits = logits_for(1000, 1, rows=6)
    tokens = sample(logits, [RowState.create(SamplingParams(**GREEDY), 1000) for _ in range(6)])
    assert [t.token_id for t in tokens] == logits.argmax(-1).tolist()
    mixed = [SamplingParams(**GREEDY), SamplingParams(temperature=1.0), SamplingParams(**GREEDY)]
    big = logits_for(V_BIG, 2, rows=3)
    tokens = sample(big, [RowState.create(p, V_BIG) for p in mixed])
    assert tokens[0].token_id == int(big[0].argmax()) and tokens[2].token_id == int(big[2].argmax())
    assert all(t.logprob is None and t.top is None for t in tokens)


CASES = {
    "temperature": SamplingParams(temperature=0.6),
    "top_k": SamplingParams(temperature=1.0, top_k=5),
    "top_p": SamplingParams(temperature=1.0, top_p=0.8),
    "top_k+top_p": SamplingParams(temperature=0.7, top_k=12, top_p=0.7),
    "hot top_p": SamplingParams(temperature=1.8, top_p=0.95),
    "penalties": SamplingParams(temperature=1.0, top_p=0.9, presence_penalty=0.8, frequency_penalty=1.5),
}
SEEN = [3, 3, 3, 7, 11]  # generated tokens (for the penalties case)


@pytest.mark.parametrize("name", list(CASES))
def test_the_kept_set_and_distribution_equal_the_reference(name: str) -> None:
    params = CASES[name]
    for seed in range(5):
        row = logits_for(64, seed, scale=2.0)
        row[0, 3] = row[0].max() + 1.0  # the most likely token is penalised in the "penalties" case
        ref, new = ref_dist(row[0], params, SEEN), new_dist(row[0], params, SEEN)
        assert np.array_equal(ref > 0, new > 0), f"{name}, seed {seed}: kept sets differ"
        np.testing.assert_allclose(new, ref, atol=1e-6)


def test_top_k_keeps_ties_with_the_kth_as_the_reference_does() -> None:
    row = torch.tensor([[1.0, 5.0, 3.0, 3.0, 3.0, 0.5, 4.0, 3.0]])
    params = SamplingParams(temperature=1.0, top_k=3)
    ref, new = ref_dist(row[0], params), new_dist(row[0], params)
    assert np.flatnonzero(new).tolist() == [1, 2, 3, 4, 6, 7] == np.flatnonzero(ref).tolist()
    np.testing.assert_allclose(new, ref, atol=1e-6)


def test_top_k_ids_are_the_k_largest_with_their_ties() -> None:
    """The k-th largest is found among the logits above the k-th largest block maximum (or in the whole row)."""
    rng = np.random.default_rng(1)
    for x in (rng.integers(0, 60, 10_007).astype(np.float32), rng.standard_normal(V_BIG).astype(np.float32)):
        x[-3:] = x.max() + 1.0  # the largest are in the tail, outside the blocks
        for k in (1, 3, 5, 40, 200, 300, x.shape[0] - 1):
            want = np.flatnonzero(x >= np.sort(x)[-k])
            assert np.array_equal(sampling._top_ids(x, k), want), k
    nan = torch.full((2, 5000), float("nan"))  # a broken model: tokens, no exception
    nan[1, :4000] = torch.randn(4000)
    for params in (SamplingParams(logprobs=3, **GREEDY), SamplingParams(temperature=0.8, top_k=3, logprobs=3)):
        assert all(0 <= t.token_id < 5000 for t in sample(nan, [RowState.create(params, 5000) for _ in range(2)]))


@pytest.mark.parametrize("name", ["temperature", "top_k+top_p", "penalties"])
def test_sampled_frequencies_follow_the_reference_distribution(name: str) -> None:
    params = CASES[name]
    row = logits_for(32, 7, scale=1.5)[0]
    r = RowState.create(params, 32)
    for tok in SEEN:
        r.observe(tok)
    torch.manual_seed(0)
    rows = [RowState.create(params, 32) for _ in range(20_000)]
    for x in rows:
        x.counts = None if r.counts is None else dict(r.counts)
    toks = [t.token_id for t in sample(row.unsqueeze(0).repeat(len(rows), 1), rows)]
    counts = np.bincount(toks, minlength=32)
    stat, df = chi2(counts, ref_dist(row, params, SEEN))
    assert stat < chi2_bound(df), f"{name}: chi-square {stat:.1f} with {df} degrees of freedom"
    # the check has power: the distribution without temperature / penalties is rejected
    wrong, wdf = chi2(counts, ref_dist(row, SamplingParams(temperature=1.0, top_k=params.top_k, top_p=params.top_p)))
    assert wrong > chi2_bound(wdf)


def test_gemma_sized_rows_keep_the_reference_sets() -> None:
    """V = 262,144: a peaked row (top-p within the first candidates), one with ~1,000 likely tokens (candidates
    grown), a flat one (the full sort), top-k; every sampled token is in the kept set."""
    peaked = logits_for(V_BIG, 3, scale=2.0)[0]
    peaked[[5, 70_000, 262_143]] += torch.tensor([14.0, 13.0, 12.5])
    grown = logits_for(V_BIG, 4, scale=0.5)[0]
    grown[torch.arange(1000) * 257] += 8.0
    flat = logits_for(V_BIG, 5, scale=0.3)[0]
    cases = [
        (peaked, SamplingParams(temperature=0.7, top_p=0.9), (2, 50)),
        (grown, SamplingParams(temperature=1.0, top_p=0.8), (500, 1000)),
        (flat, SamplingParams(temperature=1.0, top_p=0.9), (200_000, V_BIG)),
        (peaked, SamplingParams(temperature=0.7, top_k=40), (40, 40)),
        (peaked, SamplingParams(temperature=1.0, top_k=40, top_p=0.5), (1, 40)),
        (peaked, SamplingParams(temperature=1.0), (V_BIG, V_BIG)),
    ]
    for row, params, (lo, hi) in cases:
        ref, new = ref_dist(row, params), new_dist(row, params)
        assert lo <= np.count_nonzero(ref) <= hi, params  # the case exercises what it says
        differ = (ref > 0) != (new > 0)
        if row is flat:  # ~220,000 float32 probabilities of ~4e-6 in the reference's sum: one token either side
            assert np.count_nonzero(differ) <= 2 and new[differ].sum() + ref[differ].sum() < 2e-5
        else:
            assert not differ.any(), params
        both = (ref > 0) & (new > 0)
        np.testing.assert_allclose(new[both], ref[both], rtol=1e-4, atol=1e-9)
        counts = draw_many(row, params, 64)
        assert (counts[new == 0] == 0).all(), params


def test_the_inverse_cdf_never_draws_a_zero_weight() -> None:
    w = np.array([0.0, 0.0, 1.0, 0.0, 2.0, 0.0])
    top = 1.0 - 2.0**-24  # torch.rand's largest float32
    assert [sampling._draw(w, u) for u in (0.0, 0.3, 0.34, top)] == [2, 2, 4, 4]
    big = np.zeros(10_007, dtype=np.float32)  # blocks of 1,024 and a tail of 791
    big[[1023, 1024, 9_300]] = [1.0, 1e-30, 3.0]
    assert [sampling._draw(big, u) for u in (0.0, 0.2, 0.25, 0.9, top)] == [1023, 1023, 9_300, 9_300, 9_300]
    # rounding between the block sums and the cumulative sum inside a block: targets just outside [0, total)
    cum = np.cumsum([0.0, 1.0, 0.0, 2.0, 0.0])
    assert [sampling._search(cum, t) for t in (-1e-12, 0.0, 1.0, 3.0, 3.0 + 1e-12)] == [1, 1, 3, 3, 3]
    # u on a fine grid: each token gets its share of the grid to one point (300 weights in all blocks)
    rng = np.random.default_rng(0)
    w = np.zeros(10_007, dtype=np.float32)
    w[rng.choice(w.shape[0], 300, replace=False)] = rng.random(300, dtype=np.float32)
    grid = np.arange(30_000) / 30_000
    counts = np.bincount([sampling._draw(w, u) for u in grid], minlength=w.shape[0])
    expected = w / w.sum(dtype=np.float64) * grid.shape[0]
    assert np.abs(counts - expected).max() <= 1.01 and counts[w == 0].sum() == 0


def test_a_seeded_row_gives_the_same_tokens_alone_and_in_any_batch() -> None:
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=123)
    steps = [logits_for(1000, 100 + s, scale=1.0)[0] for s in range(12)]

    def run(seed: int, batched: bool) -> list[int]:
        row = RowState.create(dataclasses.replace(params, seed=seed), 1000)
        out = []
        for s, x in enumerate(steps):
            if not batched:
                out.append(sample(x.unsqueeze(0), [row])[0].token_id)
                continue
            others = logits_for(1000, 500 + s, rows=2)
            batch = torch.stack([others[0], x, others[1]])
            neighbours = [RowState.create(SamplingParams(temperature=1.0), 1000), row]
            neighbours.append(RowState.create(SamplingParams(**GREEDY), 1000))
            out.append(sample(batch, neighbours)[1].token_id)
            torch.rand(7)  # other users of torch's global RNG do not matter either
        return out

    alone = run(123, batched=False)
    assert run(123, batched=True) == alone == run(123, batched=False)
    assert run(124, batched=False) != alone


def test_penalties_apply_at_the_generated_ids_on_a_copy() -> None:
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=1.0, logprobs=3, **GREEDY)
    logits = torch.zeros(1, 50)
    logits[0, [3, 7, 9]] = torch.tensor([2.0, 1.9, 1.2])
    before = logits.clone()
    ref, new = RefRow.create(params, 50, torch.device("cpu")), RowState.create(params, 50)
    ids = []
    for _ in range(6):
        want = ref_sample(logits, [ref])[0]
        got = sample(logits, [new])[0]
        assert got.token_id == want.token_id
        assert got.logprob == pytest.approx(want.logprob, abs=1e-5)
        ids.append(got.token_id)
    assert ids[:3] == [3, 7, 9]  # each generated token is pushed below the next
    assert torch.equal(logits, before)  # the caller's logits (llama.cpp's buffer) are never written
    new.observe(-1)
    new.observe(50)  # out of the vocabulary: ignored, as before
    assert new.counts is not None and sum(new.counts.values()) == 6 and max(new.counts) < 50
    assert RowState.create(SamplingParams(), 50).counts is None  # no penalty, no counting


def test_logprobs_equal_the_reference() -> None:
    vocab = 500
    logits = logits_for(vocab, 9, rows=4)
    seen = [int(logits[2].argmax()), 4]  # generated before this step: penalised in the third row
    params = [
        SamplingParams(logprobs=3, **GREEDY),
        SamplingParams(logprobs=0, **GREEDY),
        SamplingParams(temperature=0.7, top_p=0.9, logprobs=2, presence_penalty=1.0, seed=5),
        SamplingParams(temperature=1.0),
    ]
    ref = [RefRow.create(p, vocab, torch.device("cpu")) for p in params]
    new = [RowState.create(p, vocab) for p in params]
    for r, n in zip(ref, new, strict=True):
        for tok in seen:
            r.observe(tok)
            n.observe(tok)
    want, got = ref_sample(logits, ref), sample(logits, new)
    assert got[1].top is None and got[3].logprob is None and got[3].top is None
    assert [t.token_id for t in got[:2]] == [t.token_id for t in want[:2]]
    assert [t.logprob for t in got[:2]] == pytest.approx([t.logprob for t in want[:2]], abs=1e-5)
    # the sampled row's tokens may differ: its logprob is log_softmax of the penalised row (before temperature)
    penalised = logits[2].clone()
    penalised[seen] -= 1.0
    assert got[2].logprob == pytest.approx(float(torch.log_softmax(penalised, -1)[got[2].token_id]), abs=1e-5)
    for g, w in ((got[0], want[0]), (got[2], want[2])):
        assert g.top is not None and w.top is not None
        assert [t for t, _ in g.top] == [t for t, _ in w.top]
        np.testing.assert_allclose([v for _, v in g.top], [v for _, v in w.top], atol=1e-5)
    # V = 262,144: torch's float32 log_softmax is itself ~3e-5 off there; float64 is the arbiter
    big = logits_for(V_BIG, 10)
    p5 = SamplingParams(logprobs=5, **GREEDY)
    w = ref_sample(big, [RefRow.create(p5, V_BIG, torch.device("cpu"))])[0]
    g = sample(big, [RowState.create(p5, V_BIG)])[0]
    exact = torch.log_softmax(big[0].double(), -1)
    assert g.token_id == w.token_id and g.logprob == pytest.approx(float(exact[g.token_id]), abs=1e-6)
    assert g.top is not None and w.top is not None and [t for t, _ in g.top] == [t for t, _ in w.top]
    np.testing.assert_allclose([v for _, v in g.top], exact[[t for t, _ in g.top]].numpy(), atol=1e-6)
    np.testing.assert_allclose([v for _, v in g.top], [v for _, v in w.top], atol=1e-4)


@pytest.mark.parametrize("vocab", [1000, V_BIG])
def test_a_row_with_one_finite_logit_always_gives_it(vocab: int) -> None:
    row = torch.full((1, vocab), float("-inf"))
    row[0, 417] = 0.3
    for params in [
        SamplingParams(**GREEDY),
        SamplingParams(temperature=1.0),
        SamplingParams(temperature=0.5, top_p=0.5),
        SamplingParams(temperature=1.0, top_k=10),
        SamplingParams(temperature=2.0, top_k=1, top_p=0.1, seed=3),
    ]:
        params.logprobs = 2
        for _ in range(3):
            t = sample(row, [RowState.create(params, vocab)])[0]
            assert t.token_id == 417 and t.logprob == 0.0
            assert t.top is not None and t.top[0] == (417, 0.0) and t.top[1][1] == -math.inf


def test_huge_logits_give_no_nan() -> None:
    logits = logits_for(1000, 11, rows=3) * 1e30
    logits[1, 10], logits[1, 20] = 3e38, -3e38
    logits[2, 30] = float("inf")  # no distribution to sample: the argmax, as greedy would
    for params in [
        SamplingParams(temperature=0.5, top_p=0.9, logprobs=2),
        SamplingParams(temperature=1e-4, logprobs=2),
        SamplingParams(temperature=1.0, top_k=20, logprobs=2, frequency_penalty=1.0),
    ]:
        got = sample(logits, [RowState.create(params, 1000) for _ in range(3)])
        for i, t in enumerate(got[:2]):
            assert t.token_id == int(logits[i].argmax())  # the others are >= 1e29 below it
            assert t.logprob == 0.0 and t.top is not None and not any(math.isnan(v) for _, v in t.top)
        assert got[2].token_id == 30


def test_logits_that_are_not_cpu_float32_are_copied_once_and_give_the_same_tokens() -> None:
    """The path a CUDA (or half-precision) engine's logits take: one ``.float().cpu()`` copy. CI has no GPU, so
    bfloat16 CPU logits take it here; they must give the tokens of the same values in float32."""
    half = logits_for(V_BIG, 12, rows=3).to(torch.bfloat16)
    params = [
        SamplingParams(**GREEDY),
        SamplingParams(temperature=0.8, top_p=0.9, seed=1),
        SamplingParams(logprobs=2, seed=2),
    ]
    ref = sample(half.float(), [RowState.create(p, V_BIG) for p in params])
    got = sample(half, [RowState.create(p, V_BIG, torch.device("cpu")) for p in params])
    assert [t.token_id for t in got] == [t.token_id for t in ref]
    assert got[2].logprob == pytest.approx(ref[2].logprob, abs=1e-5)
