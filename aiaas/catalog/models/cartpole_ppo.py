"""``cartpole-ppo``: a PPO policy trained with stable-baselines3 on gymnasium's CartPole-v1, measured by the
mean return on held-out seeds."""

from __future__ import annotations

import json
from typing import Any

from aiaas.catalog.common import onnx_latency_ms, size_mb
from aiaas.catalog.models.rl_common import mlp_policy_onnx, ort_session, rollout, torch_linear_layers
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

RL = Requirement(
    pip=(
        ("torch", "torch==2.13.0"),
        ("gymnasium", "gymnasium==1.4.0"),
        ("stable_baselines3", "stable-baselines3==2.9.2"),
    )
)

CARTPOLE_EVAL_SEEDS = list(range(10_000, 10_020))  # disjoint from the training seeds

CARTPOLE_CONFIG: dict[str, Any] = {
    "backend": "onnx",
    "task": "reinforcement-learning-policy",
    "description": "CartPole-v1 policy (PPO): observation -> push left/right",
    "max_batch_size": 1024,
    "inputs": [{"name": "observation", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "action", "datatype": "INT64", "shape": [-1]},
        {"name": "action_name", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ],
}


def cartpole_card(seed: int, steps: int, params: dict[str, Any], returns: list[float]) -> dict[str, Any]:
    """The model card: where the policy comes from and how ``mean_reward`` was measured."""
    return {
        "source": "trained by aiaas with stable-baselines3 2.9.2 PPO in gymnasium 1.4.0 CartPole-v1",
        "license": "model: trained by aiaas; gymnasium and stable-baselines3: MIT",
        "notes": f"PPO MlpPolicy (64-64 tanh), {steps} environment steps over 8 environments (seed {seed}); "
        f"mean_reward = mean total reward of the exported ONNX policy, acting deterministically, over "
        f"{len(CARTPOLE_EVAL_SEEDS)} episodes with reset seeds {CARTPOLE_EVAL_SEEDS[0]}.."
        f"{CARTPOLE_EVAL_SEEDS[-1]} (500 is the maximum).",
        "extra": {
            "observation": ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"],
            "actions": ["left", "right"],
            "ppo_parameters": {**params, "learning_rate": "linear 1e-3", "clip_range": "linear 0.2", "n_envs": 8},
            "eval_returns": returns,
        },
    }


@timed
def build_cartpole(ctx: BuildContext) -> BuildResult:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    steps = 16_384 if ctx.quick else 100_000

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % 4096 == 0:
                ctx.progress(0.05 + 0.75 * self.num_timesteps / steps, f"PPO step {self.num_timesteps}/{steps}")
            return True

    ctx.progress(0.02, "training PPO on CartPole-v1 (8 environments)")
    venv = make_vec_env("CartPole-v1", n_envs=8, seed=ctx.seed)
    # rl-baselines3-zoo's tuned CartPole hyperparameters (linear schedules for lr and clipping)
    params: dict[str, Any] = {
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
    }
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=lambda p: 1e-3 * p,
        clip_range=lambda p: 0.2 * p,
        seed=ctx.seed,
        device="cpu",
        verbose=0,
        **params,
    )
    model.learn(total_timesteps=steps, callback=Progress())

    ctx.progress(0.85, "exporting the policy network to ONNX")
    policy = model.policy
    layers = torch_linear_layers(policy.mlp_extractor.policy_net) + torch_linear_layers(policy.action_net)
    path = mlp_policy_onnx(layers, "tanh", (4,), ["left", "right"], "probabilities", ctx.workdir / "model.onnx")
    sess = ort_session(path)

    ctx.progress(0.9, f"evaluating the ONNX policy on {len(CARTPOLE_EVAL_SEEDS)} fixed-seed episodes")
    env = gym.make("CartPole-v1")
    returns = rollout(env, lambda o: sess.run(["action"], {"observation": o})[0], CARTPOLE_EVAL_SEEDS)
    probe = np.random.default_rng(ctx.seed).normal(0, 0.5, (256, 4)).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(policy.action_net(policy.mlp_extractor.forward_actor(torch.as_tensor(probe))), 1).numpy()
    metrics = {
        "mean_reward": float(np.mean(returns)),
        "min_reward": float(np.min(returns)),
        "eval_episodes": float(len(returns)),
        "onnx_vs_torch_max_diff": float(np.abs(sess.run(["probabilities"], {"observation": probe})[0] - ref).max()),
        "train_steps": float(steps),
    }
    metrics.update(onnx_latency_ms(path, {"observation": probe[:1]}))
    metrics["size_mb"] = size_mb(path)
    card = cartpole_card(ctx.seed, steps, params, returns)
    ctx.write({"model.onnx": path}, CARTPOLE_CONFIG, card)
    ctx.progress(1.0, f"mean reward {metrics['mean_reward']:.0f}")
    return BuildResult(metrics)


SPEC = CatalogSpec(
    name="cartpole-ppo",
    build_s=66,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="game",
    task="reinforcement-learning-policy",
    summary="CartPole-v1 policy trained with PPO, served as ONNX",
    source="trained by aiaas (stable-baselines3 PPO, gymnasium CartPole-v1)",
    license="model trained by aiaas; gymnasium/SB3 MIT",
    build=build_cartpole,
    requires=RL,
    floors=(Floor("mean_reward", ">=", 475),),
    example=json.dumps(
        {"inputs": [{"name": "observation", "shape": [1, 4], "datatype": "FP32", "data": [0.02, 0.1, 0.15, 0.3]}]}
    ),
)
