"""Game AI catalog models (quick builds) served over KServe V2: the CartPole policy balances the pole when
driven through the API, and Stockfish finds mates and refuses illegal positions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from catkit import AUTH, needs, serve_quick_builds
from fastapi.testclient import TestClient

from aiaas.catalog.registry import all_specs

NAMES = ["cartpole-ppo", "chess-stockfish"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from serve_quick_builds(tmp_path_factory, "game", NAMES)


def infer(client: TestClient, name: str, body: dict, status: int = 200) -> dict:
    r = client.post(f"/v2/models/{name}/infer", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]} if status == 200 else r.json()


def observation(*rows: list[float]) -> dict:
    return {
        "inputs": [
            {"name": "observation", "shape": [len(rows), 4], "datatype": "FP32", "data": [v for r in rows for v in r]}
        ]
    }


def test_cartpole_pushes_towards_the_falling_pole(client: TestClient) -> None:
    needs("cartpole-ppo")
    out = infer(client, "cartpole-ppo", observation([0, 0, 0.15, 1.0], [0, 0, -0.15, -1.0]))
    assert out["action"] == [1, 0]
    assert out["action_name"] == ["right", "left"]
    assert out["probabilities"][1] > 0.5 and out["probabilities"][2] > 0.5  # P(right) of row 0, P(left) of row 1
    example = infer(client, "cartpole-ppo", json.loads(all_specs()["cartpole-ppo"].example))
    assert example["action_name"] == ["right"]  # the README example's pole leans and turns right


def test_cartpole_policy_balances_the_pole_through_the_api(client: TestClient) -> None:
    needs("cartpole-ppo")
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=123)
    total, done = 0.0, False
    while not done:
        action = infer(client, "cartpole-ppo", observation(obs.tolist()))["action"][0]
        obs, reward, term, trunc, _ = env.step(action)
        total += reward
        done = term or trunc
    assert total >= 150  # random play lasts ~22 steps; the quick build reaches ~450 on average


def test_chess_readme_example_mates_on_the_back_rank(client: TestClient) -> None:
    needs("chess-stockfish")
    out = infer(client, "chess-stockfish", json.loads(all_specs()["chess-stockfish"].example))
    assert out["move"] == ["a1a8"]
    assert out["san"] == ["Ra8#"]
    assert out["evaluation"] == ["mate 1"]


def test_chess_finds_a_mate_in_two_for_black_too(client: TestClient) -> None:
    needs("chess-stockfish")
    from aiaas.catalog.models.game import solves

    # a king-and-rook mate in 2, and the same position mirrored with the colours swapped
    fens = ["2K5/k7/8/8/8/8/8/5R2 w - - 0 1", "5r2/8/8/8/8/8/K7/2k5 b - - 0 1"]
    out = infer(
        client, "chess-stockfish", {"inputs": [{"name": "fen", "shape": [2], "datatype": "BYTES", "data": fens}]}
    )
    assert [solves(f, 2, m) for f, m in zip(fens, out["move"], strict=True)] == [True, True]
    assert out["evaluation"] == ["mate 2", "mate 2"]


def test_chess_refuses_illegal_positions(client: TestClient) -> None:
    needs("chess-stockfish")
    body = {"inputs": [{"name": "fen", "shape": [1], "datatype": "BYTES", "data": ["not a fen"]}]}
    assert "FEN" in infer(client, "chess-stockfish", body, status=400)["error"]
    mated = "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3"  # after fool's mate
    body["inputs"][0]["data"] = [mated]
    assert "checkmate" in infer(client, "chess-stockfish", body, status=400)["error"]
