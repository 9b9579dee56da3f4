"""``highway-policy``: a DQN policy trained on highway-env, measured on held-out seeds."""

from __future__ import annotations

import json
import os
from typing import Any

from aiaas.catalog.common import onnx_latency_ms, size_mb
from aiaas.catalog.models.rl_common import mlp_policy_onnx, ort_session, rollout, torch_linear_layers
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

HIGHWAY = Requirement(
    pip=(
        ("torch", "torch==2.13.0"),
        ("gymnasium", "gymnasium==1.4.0"),
        ("stable_baselines3", "stable-baselines3==2.9.2"),
        ("highway_env", "highway-env==1.12.1"),
    )
)

HIGHWAY_ACTIONS = ["LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER"]
HIGHWAY_EVAL_SEEDS = list(range(20_000, 20_020))


HIGHWAY_CONFIG: dict[str, Any] = {
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


def highway_card(
    seed: int,
    steps: int,
    seeds: list[int],
    params: dict[str, Any],
    policy: list[float],
    random_ret: list[float],
    idle_ret: list[float],
) -> dict[str, Any]:
    """The model card: where the policy comes from and how ``mean_return`` and its baselines were measured."""
    return {
        "source": "trained by aiaas with stable-baselines3 2.9.2 DQN in highway-env 1.12.1 highway-fast-v0",
        "license": "model: trained by aiaas; highway-env, gymnasium, stable-baselines3: MIT",
        "notes": f"DQN (MLP 256-256 ReLU), {steps} environment steps (seed {seed}). mean_return = mean total "
        f"reward of the exported ONNX policy over {len(seeds)} episodes with reset seeds "
        f"{seeds[0]}..{seeds[-1]}; the random and always-IDLE drivers are measured on the same seeds. "
        "Episodes last up to 30 policy steps and end at a collision; rewards are normalised to [0, 1].",
        "extra": {
            "environment": "highway-fast-v0 with its default configuration",
            "observation": "Kinematics: 5 vehicles (ego first) x [presence, x, y, vx, vy], normalised; "
            "other vehicles relative to the ego",
            "actions": HIGHWAY_ACTIONS,
            "dqn_parameters": params,
            "returns": {"policy": policy, "random": random_ret, "idle": idle_ret},
        },
    }


@timed
def build_highway(ctx: BuildContext) -> BuildResult:
    import numpy as np

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
    params: dict[str, Any] = {
        "learning_rate": 5e-4,
        "buffer_size": 15_000,
        "learning_starts": 100 if ctx.quick else 200,
        "batch_size": 32,
        "gamma": 0.8,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_interval": 50,
        "exploration_fraction": 0.7,
    }
    ctx.progress(0.02, f"training DQN in highway-fast-v0 for {steps} steps")
    model = DQN(
        "MlpPolicy", env, policy_kwargs={"net_arch": [256, 256]}, seed=ctx.seed, device="cpu", verbose=0, **params
    )
    model.learn(total_timesteps=steps, callback=Progress())

    path = mlp_policy_onnx(
        torch_linear_layers(model.q_net.q_net), "relu", (5, 5), HIGHWAY_ACTIONS, "q_values", ctx.workdir / "model.onnx"
    )
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
    card = highway_card(ctx.seed, steps, seeds, params, policy, random_ret, idle_ret)
    ctx.write({"model.onnx": path}, HIGHWAY_CONFIG, card)
    ctx.progress(1.0, f"mean return {metrics['mean_return']:.1f} (idle {metrics['idle_mean_return']:.1f})")
    return BuildResult(metrics)


SPEC = CatalogSpec(
    name="highway-policy",
    build_s=322,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="driving",
    task="reinforcement-learning-policy",
    summary="Highway driving policy (DQN in highway-env), served as ONNX",
    source="trained by aiaas (stable-baselines3 DQN, highway-env highway-fast-v0)",
    license="model trained by aiaas; highway-env MIT",
    build=build_highway,
    requires=HIGHWAY,
    floors=(Floor("margin_over_baselines", ">", 0.0),),
    # the first observation of highway-fast-v0 reset with seed 20000
    example=json.dumps(
        {
            "inputs": [
                {
                    "name": "observation",
                    "shape": [1, 5, 5],
                    "datatype": "FP32",
                    "data": [
                        1.0,
                        0.778,
                        0.667,
                        0.312,
                        0.0,
                        1.0,
                        0.118,
                        -0.333,
                        -0.049,
                        0.0,
                        1.0,
                        0.221,
                        0.0,
                        -0.048,
                        0.0,
                        1.0,
                        0.336,
                        -0.667,
                        -0.019,
                        0.0,
                        1.0,
                        0.463,
                        0.0,
                        -0.027,
                        0.0,
                    ],
                }
            ]
        }
    ),
)
