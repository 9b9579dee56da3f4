"""The MovieLens recommender (quick build) served over KServe V2: top-k lists leave out what the user rated,
come best first with predicted stars, and rating predictions follow the user's own taste."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aiaas.catalog.builder import build
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.settings import Settings

ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NAME = "movielens-mf"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    missing = all_specs()[NAME].requires.missing()
    if missing:
        pytest.skip(f"needs: {missing}")
    home = tmp_path_factory.mktemp("recsys") / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    st = build(all_specs()[NAME], repo, quick=True, progress=lambda f, m: None)
    assert st.state == "built", st.detail
    assert st.metrics and st.metrics["recall_at_10"] > st.metrics["recall_at_10_popularity"]
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off"))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def ratings() -> object:
    from aiaas.catalog.models.recommendation import load_movielens

    return load_movielens()


def infer(client: TestClient, body: dict, status: int = 200) -> dict:
    r = client.post(f"/v2/models/{NAME}/infer", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    return {o["name"]: o for o in r.json()["outputs"]} if status == 200 else r.json()


def ints(name: str, *values: int) -> dict:
    return {"name": name, "shape": [len(values)], "datatype": "INT64", "data": list(values)}


def test_readme_example_recommends_unrated_movies_best_first(client: TestClient, ratings) -> None:
    out = infer(client, json.loads(all_specs()[NAME].example))
    items = json.loads(out["items"]["data"][0])
    assert len(items) == 5 and out["scores"]["shape"] == [1, 5] and out["ratings"]["shape"] == [1, 5]
    scores = out["scores"]["data"]
    assert scores == sorted(scores, reverse=True)
    rated = set(ratings.loc[ratings["userId"] == 15, "movieId"])
    assert not rated & {m["movie_id"] for m in items}
    titles = dict(zip(ratings["movieId"], ratings["title"], strict=False))
    assert all(titles[m["movie_id"]] == m["title"] for m in items)
    assert all(0.5 <= s <= 5.0 for s in out["ratings"]["data"])


def test_several_users_get_different_lists(client: TestClient) -> None:
    out = infer(client, {"inputs": [ints("user_id", 1, 2, 3)]})
    lists = [tuple(m["movie_id"] for m in json.loads(x)) for x in out["items"]["data"]]
    assert [len(x) for x in lists] == [10, 10, 10] and out["scores"]["shape"] == [3, 10]
    assert len(set(lists)) == 3


def test_rating_predictions_follow_the_users_own_ratings(client: TestClient, ratings) -> None:
    # the most active user (2,391 ratings): the model learnt their taste from the earlier 80% of them
    user = ratings["userId"].value_counts().idxmax()
    mine = ratings[ratings["userId"] == user]
    loved = mine[mine["rating"] >= 4.5]["movieId"].head(20).tolist()
    hated = mine[mine["rating"] <= 1.5]["movieId"].head(20).tolist()
    assert loved and hated
    movies = loved + hated
    out = infer(client, {"inputs": [ints("user_id", *([int(user)] * len(movies))), ints("item_id", *movies)]})
    pred = np.array(out["rating"]["data"])
    assert out["rating"]["shape"] == [len(movies)]
    assert pred[: len(loved)].mean() > pred[len(loved) :].mean() + 0.5


@pytest.mark.parametrize(
    "inputs, message",
    [
        ([ints("user_id", 999999)], "unknown user_id"),
        ([ints("user_id", 1), ints("k", 1000)], "k must be"),
        ([ints("user_id", 1, 2), ints("item_id", 31)], "rows"),
        ([ints("user_id", 1), ints("item_id", -5)], "unknown item_id"),
    ],
)
def test_bad_requests_are_400_with_the_reason(client: TestClient, inputs: list, message: str) -> None:
    err = infer(client, {"inputs": inputs}, status=400)
    assert message in err["error"]
