"""Driving catalog models (quick builds) served over KServe V2: A* paths are optimal and legal in both
request forms; the highway policy answers with consistent actions, names and Q-values."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from catkit import AUTH, needs, serve_quick_builds
from fastapi.testclient import TestClient

from aiaas.catalog.registry import all_specs

NAMES = ["astar-planner", "highway-policy"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from serve_quick_builds(tmp_path_factory, "driving", NAMES)


def infer(client: TestClient, name: str, body: dict, status: int = 200) -> dict:
    r = client.post(f"/v2/models/{name}/infer", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]} if status == 200 else r.json()


def grid_body(grids: np.ndarray, starts: list[list[int]], goals: list[list[int]]) -> dict:
    n, h, w = grids.shape
    return {
        "inputs": [
            {"name": "grid", "shape": [n, h, w], "datatype": "UINT8", "data": grids.reshape(-1).tolist()},
            {"name": "start", "shape": [n, 2], "datatype": "INT32", "data": [v for s in starts for v in s]},
            {"name": "goal", "shape": [n, 2], "datatype": "INT32", "data": [v for g in goals for v in g]},
        ]
    }


def test_astar_readme_example_is_optimal_and_legal(client: TestClient) -> None:
    needs("astar-planner")
    from aiaas.catalog.models.driving import path_ok, reference_cost
    from aiaas.catalog.runtime.driving_astar import parse_grid

    body = json.loads(all_specs()["astar-planner"].example)
    problem = json.loads(body["inputs"][0]["data"][0])
    out = infer(client, "astar-planner", body)
    assert out["found"] == [True]
    grid, start, goal = parse_grid(problem["grid"]), tuple(problem["start"]), tuple(problem["goal"])
    path = json.loads(out["path"][0])
    assert math.isclose(out["cost"][0], reference_cost(grid, start, goal, 8), abs_tol=1e-4)
    assert path_ok(grid, path, start, goal, out["cost"][0], 8)


def test_astar_tensor_form_batches_and_reports_unreachable_goals(client: TestClient) -> None:
    needs("astar-planner")
    open_grid = np.zeros((10, 10), dtype=np.uint8)
    walled = open_grid.copy()
    walled[:, 5] = 1  # a wall cuts the map in two
    out = infer(client, "astar-planner", grid_body(np.stack([open_grid, walled]), [[0, 0], [0, 0]], [[9, 9], [9, 9]]))
    assert out["found"] == [True, False]
    assert out["cost"][0] == pytest.approx(9 * math.sqrt(2), abs=1e-4)  # the diagonal
    assert out["cost"][1] == -1 and json.loads(out["path"][1]) == []
    four = infer(
        client, "astar-planner", {**grid_body(open_grid[None], [[0, 0]], [[9, 9]]), "parameters": {"connectivity": 4}}
    )
    assert four["cost"] == [18.0]  # Manhattan distance without diagonals


def test_astar_rejects_bad_requests(client: TestClient) -> None:
    needs("astar-planner")
    body = {
        "inputs": [
            {
                "name": "request",
                "shape": [1],
                "datatype": "BYTES",
                "data": [json.dumps({"grid": ["...", "..."], "start": [0, 0], "goal": [5, 5]})],
            }
        ]
    }
    assert "outside" in infer(client, "astar-planner", body, status=400)["error"]
    body["inputs"][0]["data"] = ["{not json"]
    assert "JSON" in infer(client, "astar-planner", body, status=400)["error"]


def test_highway_policy_answers_consistently(client: TestClient) -> None:
    needs("highway-policy")
    from aiaas.catalog.models.driving import HIGHWAY_ACTIONS

    example = json.loads(all_specs()["highway-policy"].example)
    one = example["inputs"][0]["data"]
    empty_road = [1.0, 0.5, 0.333, 0.3, 0.0] + [0.0] * 20
    body = {"inputs": [{"name": "observation", "shape": [2, 5, 5], "datatype": "FP32", "data": one + empty_road}]}
    out = infer(client, "highway-policy", body)
    q = np.array(out["q_values"]).reshape(2, 5)
    assert out["action"] == q.argmax(axis=1).tolist()
    assert out["action_name"] == [HIGHWAY_ACTIONS[a] for a in out["action"]]
    assert not np.allclose(q[0], q[1])  # the observation matters
    assert infer(client, "highway-policy", example)["action"] == out["action"][:1]
