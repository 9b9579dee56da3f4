"""Extractive summarisation over the served embedding model: the most central sentences, in text order.

Each sentence is embedded by the catalog's embedding model (called through the server's data plane, so it keeps
its own batching and replicas), sentences are scored by TextRank (PageRank over the cosine-similarity graph:
a sentence is central when it resembles many others) and the best ``sentences`` are returned in their original
order, skipping near-duplicates of sentences already chosen. Nothing here is trained: the quality is the
embedding model's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from aiaas.catalog.runtime.nlp_common import bytes_tensor, int_parameter, texts
from aiaas.errors import InferenceError
from aiaas.runtime import Model, Tensors

EMBED_CHUNK = 64  # rows per call to the embedding model (its max_batch_size)
DUPLICATE_COSINE = 0.92  # a candidate this close to a chosen sentence adds nothing
MAX_SENTENCES = 2000  # per text; beyond this TextRank's n^2 matrix is too much for one request

_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "inc",
    "ltd",
    "co",
    "fig",
    "no",
    "approx",
    "u.s",
    "u.k",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
}
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: breaks after . ! ? before a capital (not after common abbreviations or
    initials) and at blank lines."""
    parts: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        chunk = text[start : m.start()]
        last = chunk.rstrip("\"')]").rsplit(None, 1)[-1] if chunk.strip() else ""
        word = last.rstrip(".!?").lower()
        if m.group(0).strip() == "" and last.endswith(".") and (word in _ABBREVIATIONS or len(word) == 1):
            continue  # "Dr. Smith", "J. Doe": not a sentence end
        parts.append(chunk)
        start = m.end()
    parts.append(text[start:])
    return [" ".join(p.split()) for p in parts if p.strip()]


def textrank(emb: np.ndarray, damping: float = 0.85, iters: int = 50) -> np.ndarray:
    """PageRank centrality of each row of L2-normalised ``emb`` over the (non-negative) cosine graph."""
    n = len(emb)
    sim = np.clip(emb @ emb.T, 0.0, None)
    np.fill_diagonal(sim, 0.0)
    norm = sim.sum(axis=1, keepdims=True)
    trans = np.divide(sim, norm, out=np.full_like(sim, 1.0 / max(1, n)), where=norm > 0)
    score = np.full(n, 1.0 / n)
    for _ in range(iters):
        score = (1 - damping) / n + damping * (trans.T @ score)
    return score


def choose(emb: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` best sentences in text order, skipping near-duplicates of those already taken."""
    if len(emb) <= k:
        return list(range(len(emb)))
    order = np.argsort(-textrank(emb), kind="stable")
    picked: list[int] = []
    for i in order:
        if all(float(emb[i] @ emb[j]) < DUPLICATE_COSINE for j in picked):
            picked.append(int(i))
        if len(picked) == k:
            break
    for i in order:  # only duplicates left: fill up anyway rather than return fewer than asked
        if len(picked) == k:
            break
        if int(i) not in picked:
            picked.append(int(i))
    return sorted(picked)


def summarize(sentences: list[str], emb: np.ndarray, k: int) -> str:
    return " ".join(sentences[i] for i in choose(emb, k))


class ExtractiveSummarizer(Model):
    """``text`` -> ``summary``; request parameter ``sentences`` (default 3) sets the summary length."""

    def load(self) -> None:
        self.embedding_model = str(self.config.parameters.get("embedding_model", "minilm-embedding"))
        self.default_k = int(self.config.parameters.get("sentences", 3))
        if self.context.infer is None:
            raise ValueError("the summarizer calls the embedding model through the server's data plane")

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        k = int_parameter(parameters, "sentences", self.default_k, 1, 100)
        docs = [split_sentences(t)[:MAX_SENTENCES] for t in texts(inputs)]
        flat = [s for d in docs for s in d]
        emb = await self._embed(flat)
        out, pos = [], 0
        for d in docs:
            out.append(summarize(d, emb[pos : pos + len(d)], k))
            pos += len(d)
        return {"summary": bytes_tensor(out)}

    async def _embed(self, sentences: list[str]) -> np.ndarray:
        infer: Callable[..., Awaitable[Tensors]] | None = self.context.infer
        assert infer is not None
        parts = []
        for start in range(0, len(sentences), EMBED_CHUNK):
            feed = {"text": bytes_tensor(sentences[start : start + EMBED_CHUNK])}
            out = await infer(self.embedding_model, None, feed, {})
            if "embedding" not in out:
                raise InferenceError(f"model {self.embedding_model!r} returned no 'embedding' output")
            parts.append(np.asarray(out["embedding"], dtype=np.float32))
        return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
