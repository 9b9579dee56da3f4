"""MovieLens recommender: matrix factorisation served from numpy arrays (no framework at serve time).

The version directory holds ``factors.npz`` (plain arrays, loaded without pickle) and ``movies.json``
(movie ids, titles, years). Two factorisations, both trained by aiaas on the same ratings:

- ranking: PureSVD (Cremonesi et al. 2010), a truncated SVD of the user x movie "has rated" matrix; the score
  of a movie for a user is the reconstructed entry. Optimised for top-k lists.
- rating: biased matrix factorisation fitted by alternating least squares; predicts stars (0.5-5).

Requests (no dynamic batching: one request is one set of users):
- ``user_id`` INT64 [n] (+ optional ``k`` INT64 [1], default 10, at most 100) -> ``items`` BYTES [n] (JSON list
  of ``{"movie_id", "title", "year"}``, best first, movies the user already rated left out), ``scores`` FP32
  [n, k] (ranking scores) and ``ratings`` FP32 [n, k] (predicted stars for the same movies).
- ``user_id`` INT64 [n] + ``item_id`` INT64 [n] (MovieLens movie ids) -> ``rating`` FP32 [n] (predicted stars).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.runtime.base import BlockingModel, Tensors

MAX_K = 100


class MovieRecommender(BlockingModel):
    def load(self) -> None:
        with np.load(self.version_dir / "factors.npz", allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in z.files}
        a = self.arrays
        self.user_ids, self.item_ids = a["user_ids"], a["item_ids"]
        self.mu = float(a["mu"])
        movies = json.loads((self.version_dir / "movies.json").read_text())
        self.movies = [
            {"movie_id": int(m), "title": t, "year": y}
            for m, t, y in zip(movies["movie_id"], movies["title"], movies["year"], strict=True)
        ]
        if len(self.movies) != len(self.item_ids):
            raise RuntimeError("movies.json and factors.npz disagree on the number of movies")

    def _index(self, ids: np.ndarray, known: np.ndarray, what: str) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        pos = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
        bad = ids[known[pos] != ids]
        if len(bad):
            raise InvalidInput(f"unknown {what} {bad[:5].tolist()}; known ids run from {known[0]} to {known[-1]}")
        return pos

    def rating(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        a = self.arrays
        r = self.mu + a["user_bias"][u] + a["item_bias"][i] + np.sum(a["user_f"][u] * a["item_f"][i], axis=-1)
        return np.clip(r, 0.5, 5.0).astype(np.float32)

    def recommend(self, u: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(movie indices, ranking scores) of the k best movies the user has not rated."""
        a = self.arrays
        scores = a["item_rank"] @ a["user_rank"][u]
        seen = a["seen_indices"][a["seen_indptr"][u] : a["seen_indptr"][u + 1]]
        scores[seen] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top].astype(np.float32)

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        if "user_id" not in inputs:
            raise InvalidInput("input 'user_id' is required")
        users = self._index(inputs["user_id"], self.user_ids, "user_id")
        if "item_id" in inputs:
            items = self._index(inputs["item_id"], self.item_ids, "item_id (MovieLens movieId)")
            if len(items) != len(users):
                raise InvalidInput(f"item_id has {len(items)} rows but user_id has {len(users)}")
            return {"rating": self.rating(users, items)}
        k = 10
        if "k" in inputs:
            ks = np.asarray(inputs["k"]).reshape(-1)
            if len(ks) != 1 or not 1 <= int(ks[0]) <= MAX_K:
                raise InvalidInput(f"k must be one integer between 1 and {MAX_K}")
            k = int(ks[0])
        lists, scores, ratings = [], [], []
        for u in users:
            top, s = self.recommend(int(u), k)
            lists.append(json.dumps([self.movies[i] for i in top], ensure_ascii=False).encode())
            scores.append(s)
            ratings.append(self.rating(np.full(len(top), u), top))
        out = np.empty(len(lists), dtype=object)
        out[:] = lists
        width = min(len(s) for s in scores) if scores else k  # equal for every user unless one rated nearly all
        return {
            "items": out,
            "scores": np.stack([s[:width] for s in scores]) if scores else np.zeros((0, k), np.float32),
            "ratings": np.stack([r[:width] for r in ratings]) if ratings else np.zeros((0, k), np.float32),
        }

    def unload(self) -> None:
        self.arrays = {}
