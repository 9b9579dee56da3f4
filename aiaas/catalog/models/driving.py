"""Autonomous driving: a path planner on occupancy grids and a highway driving policy trained by aiaas.

``astar-planner`` (python model, ``aiaas.catalog.runtime.driving_astar``): an occupancy grid with start and
goal -> the shortest collision-free path (JSON list of [row, col]) and its cost. Its build measures it
against an independent reference (scipy's Dijkstra on the same move graph) on random grids.

``highway-policy``: a DQN trained by aiaas in highway-env's ``highway-fast-v0`` (3 lanes, 20 IDM vehicles),
served as ONNX: ``observation`` FP32 [-1, 5, 5] (the env's Kinematics observation: ego + 4 nearest vehicles
x [presence, x, y, vx, vy], normalised, others relative to the ego) -> ``action`` INT64, ``action_name`` and
``q_values``. Its build compares the exported policy with a random and an always-IDLE driver on the same
fixed-seed episodes.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from typing import Any

import numpy as np

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.catalog.common import onnx_latency_ms, size_mb
from aiaas.catalog.models.game import mlp_policy_onnx, ort_session, rollout, torch_linear_layers

PLANNER = Requirement(pip=(("scipy", "scipy"),))  # scipy only for the build's reference Dijkstra
HIGHWAY = Requirement(pip=(("torch", "torch==2.13.0"), ("gymnasium", "gymnasium==1.4.0"),
                           ("stable_baselines3", "stable-baselines3==2.9.2"), ("highway_env", "highway-env==1.12.1")))


def random_problem(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    h, w = (int(v) for v in rng.integers(8, 65, size=2))
    grid = (rng.random((h, w)) < rng.uniform(0.1, 0.4)).astype(np.uint8)
    free = np.argwhere(grid == 0)
    a, b = rng.choice(len(free), size=2, replace=False)
    return grid, (int(free[a][0]), int(free[a][1])), (int(free[b][0]), int(free[b][1]))


def reference_cost(grid: np.ndarray, start: tuple[int, int], goal: tuple[int, int], connectivity: int) -> float:
    """Dijkstra (scipy.sparse.csgraph) on the same move graph as the planner; inf when unreachable."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    from aiaas.catalog.runtime.driving_astar import moves, step_allowed

    h, w = grid.shape
    rows, cols, vals = [], [], []
    for r, c in np.argwhere(grid == 0):
        for dr, dc, cost in moves(connectivity):
            if step_allowed(grid, int(r), int(c), dr, dc):
                rows.append(r * w + c)
                cols.append((r + dr) * w + c + dc)
                vals.append(cost)
    graph = coo_matrix((vals, (rows, cols)), shape=(h * w, h * w)).tocsr()
    dist = dijkstra(graph, indices=start[0] * w + start[1])
    return float(dist[goal[0] * w + goal[1]])


def path_ok(grid: np.ndarray, path: list[list[int]], start: tuple[int, int], goal: tuple[int, int],
            cost: float, connectivity: int) -> bool:
    """The path starts and ends right, every step is a legal move, and the step costs add up to ``cost``."""
    from aiaas.catalog.runtime.driving_astar import moves, step_allowed

    if not path or tuple(path[0]) != start or tuple(path[-1]) != goal:
        return False
    step_cost = {(dr, dc): c for dr, dc, c in moves(connectivity)}
    total = 0.0
    for (r, c), (nr, nc) in itertools.pairwise(path):
        d = (nr - r, nc - c)
        if d not in step_cost or not step_allowed(grid, r, c, *d):
            return False
        total += step_cost[d]
    return abs(total - cost) < 1e-3


@timed
def build_astar(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.driving_astar import AStarPlanner
    from aiaas.runtime import RuntimeContext
    from aiaas.types.model_config import ModelConfig

    config = {
        "backend": "python",
        "task": "path-planning",
        "description": "A* shortest path on an occupancy grid (8-connected, no corner cutting)",
        "max_batch_size": 16,
        "parameters": {"class": "aiaas.catalog.runtime.driving_astar:AStarPlanner", "connectivity": 8},
        "inputs": [
            {"name": "request", "datatype": "BYTES", "shape": [-1], "optional": True},
            {"name": "grid", "datatype": "UINT8", "shape": [-1, -1, -1], "optional": True},
            {"name": "start", "datatype": "INT32", "shape": [-1, 2], "optional": True},
            {"name": "goal", "datatype": "INT32", "shape": [-1, 2], "optional": True},
        ],
        "outputs": [
            {"name": "path", "datatype": "BYTES", "shape": [-1]},
            {"name": "cost", "datatype": "FP32", "shape": [-1]},
            {"name": "found", "datatype": "BOOL", "shape": [-1]},
            {"name": "expanded", "datatype": "INT32", "shape": [-1]},
        ],
    }
    planner = AStarPlanner(ModelConfig.model_validate(config), ctx.workdir, RuntimeContext())
    planner.load()
    rng = np.random.default_rng(ctx.seed)
    n = 40 if ctx.quick else 300
    solvable = found_ok = optimal = valid = false_paths = 0
    for i in range(n):
        if i % 20 == 0:
            ctx.progress(0.05 + 0.8 * i / n, f"random grid {i}/{n} vs Dijkstra")
        grid, start, goal = random_problem(rng)
        conn = 8 if i % 4 else 4
        out = planner.run({"grid": grid[None], "start": np.array([start], dtype=np.int32),
                               "goal": np.array([goal], dtype=np.int32)}, {"connectivity": conn})
        ref = reference_cost(grid, start, goal, conn)
        found, cost, path = bool(out["found"][0]), float(out["cost"][0]), json.loads(out["path"][0])
        if math.isinf(ref):
            false_paths += found
            continue
        solvable += 1
        found_ok += found
        optimal += found and abs(cost - ref) < 1e-3
        valid += found and path_ok(grid, path, start, goal, cost, conn)
    ctx.progress(0.9, "timing a 64x64 map")
    grid = (np.random.default_rng(ctx.seed + 1).random((64, 64)) < 0.25).astype(np.uint8)
    grid[0, 0] = grid[63, 63] = 0
    feed = {"grid": grid[None], "start": np.array([[0, 0]], dtype=np.int32), "goal": np.array([[63, 63]], dtype=np.int32)}
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        planner.run(feed, {})
        times.append((time.perf_counter() - t0) * 1000)
    metrics = {
        "success_rate": found_ok / max(solvable, 1),
        "optimality": optimal / max(solvable, 1),
        "valid_paths": valid / max(solvable, 1),
        "false_paths": float(false_paths),
        "grids": float(n),
        "solvable_grids": float(solvable),
        "latency_p50_ms_64x64": float(np.percentile(times, 50)),
    }
    marker = ctx.workdir / "planner.json"
    marker.write_text(json.dumps({"algorithm": "A*", "heuristic": "octile (8-connected) / Manhattan (4)"}))
    card = {
        "source": "aiaas (A* search, code in aiaas.catalog.runtime.driving_astar)",
        "license": "Apache-2.0 (aiaas)",
        "notes": f"Measured on {n} random grids (8x8..64x64, 10-40% obstacles, seed {ctx.seed}; a quarter 4-connected) "
                 "against scipy's Dijkstra on the same move graph: success_rate = found / solvable, optimality = "
                 "cost equal to Dijkstra's, valid_paths = every step legal and costs add up, false_paths = paths "
                 "reported on unsolvable grids. Hybrid A* (vehicle kinematics) is not included.",
        "extra": {"cell": "0 free, non-zero blocked", "moves": "straight 1, diagonal sqrt(2) without corner cutting",
                  "max_cells": 512 * 512},
    }
    ctx.write({"planner.json": marker}, config, card)
    ctx.progress(1.0, f"optimality {metrics['optimality']:.3f}")
    return BuildResult(metrics)


HIGHWAY_ACTIONS = ["LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER"]
HIGHWAY_EVAL_SEEDS = list(range(20_000, 20_020))


@timed
def build_highway(ctx: BuildContext) -> BuildResult:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # highway-env imports pygame, which greets on stdout
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the highway environments)
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    steps = 250 if ctx.quick else 5000
    seeds = HIGHWAY_EVAL_SEEDS[: 2 if ctx.quick else len(HIGHWAY_EVAL_SEEDS)]
    env = gym.make("highway-fast-v0")
    actions = list(env.unwrapped.action_type.actions_indexes)  # type: ignore[attr-defined]
    if actions != HIGHWAY_ACTIONS:
        raise RuntimeError(f"unexpected highway actions {actions}")

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % 100 == 0:
                ctx.progress(0.02 + 0.68 * self.num_timesteps / steps, f"DQN step {self.num_timesteps}/{steps}")
            return True

    # highway-env's documented DQN recipe: short horizon (gamma 0.8), frequent target updates
    params: dict[str, Any] = {"learning_rate": 5e-4, "buffer_size": 15_000,
                              "learning_starts": 100 if ctx.quick else 200, "batch_size": 32,
                              "gamma": 0.8, "train_freq": 1, "gradient_steps": 1, "target_update_interval": 50,
                              "exploration_fraction": 0.7}
    ctx.progress(0.02, f"training DQN in highway-fast-v0 for {steps} steps")
    model = DQN("MlpPolicy", env, policy_kwargs={"net_arch": [256, 256]}, seed=ctx.seed, device="cpu", verbose=0,
                **params)
    model.learn(total_timesteps=steps, callback=Progress())

    path = mlp_policy_onnx(torch_linear_layers(model.q_net.q_net), "relu", (5, 5), HIGHWAY_ACTIONS, "q_values",
                           ctx.workdir / "model.onnx")
    sess = ort_session(path)
    eval_env = gym.make("highway-fast-v0")
    ctx.progress(0.72, f"evaluating the ONNX policy on {len(seeds)} fixed-seed episodes")
    policy = rollout(eval_env, lambda o: sess.run(["action"], {"observation": o})[0], seeds)
    ctx.progress(0.82, "evaluating the random and the always-IDLE drivers on the same episodes")
    rng = np.random.default_rng(ctx.seed)
    random_ret = rollout(eval_env, lambda o: rng.integers(0, 5, size=1), seeds)
    idle_ret = rollout(eval_env, lambda o: np.array([HIGHWAY_ACTIONS.index("IDLE")]), seeds)
    probe = np.random.default_rng(ctx.seed).normal(0, 0.3, (64, 5, 5)).astype(np.float32)
    with torch.no_grad():
        ref = model.q_net(torch.as_tensor(probe)).numpy()
    metrics = {
        "mean_return": float(np.mean(policy)),
        "random_mean_return": float(np.mean(random_ret)),
        "idle_mean_return": float(np.mean(idle_ret)),
        "margin_over_baselines": float(np.mean(policy) - max(np.mean(random_ret), np.mean(idle_ret))),
        "eval_episodes": float(len(seeds)),
        "train_steps": float(steps),
        "onnx_vs_torch_max_diff": float(np.abs(sess.run(["q_values"], {"observation": probe})[0] - ref).max()),
    }
    metrics.update(onnx_latency_ms(path, {"observation": probe[:1]}))
    metrics["size_mb"] = size_mb(path)
    config = {
        "backend": "onnx",
        "task": "reinforcement-learning-policy",
        "description": "Highway driving policy (DQN, highway-env): Kinematics observation -> meta-action",
        "max_batch_size": 256,
        "inputs": [{"name": "observation", "datatype": "FP32", "shape": [-1, 5, 5]}],
        "outputs": [
            {"name": "action", "datatype": "INT64", "shape": [-1]},
            {"name": "action_name", "datatype": "BYTES", "shape": [-1]},
            {"name": "q_values", "datatype": "FP32", "shape": [-1, 5]},
        ],
    }
    card = {
        "source": "trained by aiaas with stable-baselines3 2.9.2 DQN in highway-env 1.12.1 highway-fast-v0",
        "license": "model: trained by aiaas; highway-env, gymnasium, stable-baselines3: MIT",
        "notes": f"DQN (MLP 256-256 ReLU), {steps} environment steps (seed {ctx.seed}). mean_return = mean total "
                 f"reward of the exported ONNX policy over {len(seeds)} episodes with reset seeds "
                 f"{seeds[0]}..{seeds[-1]}; the random and always-IDLE drivers are measured on the same seeds. "
                 "Episodes last up to 30 policy steps and end at a collision; rewards are normalised to [0, 1].",
        "extra": {"environment": "highway-fast-v0 with its default configuration",
                  "observation": "Kinematics: 5 vehicles (ego first) x [presence, x, y, vx, vy], normalised; "
                                 "other vehicles relative to the ego",
                  "actions": HIGHWAY_ACTIONS, "dqn_parameters": params,
                  "returns": {"policy": policy, "random": random_ret, "idle": idle_ret}},
    }
    ctx.write({"model.onnx": path}, config, card)
    ctx.progress(1.0, f"mean return {metrics['mean_return']:.1f} (idle {metrics['idle_mean_return']:.1f})")
    return BuildResult(metrics)


SPECS = [
    CatalogSpec(
        name="astar-planner",
        scenario="driving",
        task="path-planning",
        summary="A* shortest path on an occupancy grid (path planning)",
        source="aiaas (A* search)",
        license="Apache-2.0",
        build=build_astar,
        requires=PLANNER,
        floors=(Floor("success_rate", ">=", 1.0), Floor("optimality", ">=", 1.0)),
        example=json.dumps({"inputs": [{"name": "request", "shape": [1], "datatype": "BYTES", "data": [json.dumps(
            {"grid": ["....#...", ".##.#.#.", "....#.#.", ".#....#.", "......#."], "start": [0, 0],
             "goal": [4, 7]})]}]}),
    ),
    CatalogSpec(
        name="highway-policy",
        scenario="driving",
        task="reinforcement-learning-policy",
        summary="Highway driving policy (DQN in highway-env), served as ONNX",
        source="trained by aiaas (stable-baselines3 DQN, highway-env highway-fast-v0)",
        license="model trained by aiaas; highway-env MIT",
        build=build_highway,
        requires=HIGHWAY,
        floors=(Floor("margin_over_baselines", ">", 0.0),),
        # the first observation of highway-fast-v0 reset with seed 20000
        example=json.dumps({"inputs": [{"name": "observation", "shape": [1, 5, 5], "datatype": "FP32", "data": [
            1.0, 0.778, 0.667, 0.312, 0.0,
            1.0, 0.118, -0.333, -0.049, 0.0,
            1.0, 0.221, 0.0, -0.048, 0.0,
            1.0, 0.336, -0.667, -0.019, 0.0,
            1.0, 0.463, 0.0, -0.027, 0.0]}]}),
    ),
]
