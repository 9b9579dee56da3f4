"""Game AI: a CartPole policy aiaas trains with PPO and serves as ONNX, and a Stockfish chess move service.

``cartpole-ppo``: ``observation`` FP32 [-1, 4] (cart position, cart velocity, pole angle, pole angular
velocity) -> ``action`` INT64 [-1] (0 = push left, 1 = push right), ``action_name`` BYTES and
``probabilities`` FP32 [-1, 2]. The quality is measured by running the exported ONNX graph (not the training
object) in the environment for fixed-seed episodes.

``chess-stockfish``: ``fen`` BYTES [-1] -> ``move`` (UCI), ``san`` and ``evaluation``; Debian ``stockfish``
plays, pip ``chess`` checks the positions. Measured on mate-in-1/2 puzzles shipped below, verified by brute
force (every defence is mated), so the metric does not trust the engine it measures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.catalog.common import onnx_latency_ms, size_mb

RL = Requirement(pip=(("torch", "torch==2.13.0"), ("gymnasium", "gymnasium==1.4.0"),
                      ("stable_baselines3", "stable-baselines3==2.9.2")))
CHESS = Requirement(pip=(("chess", "chess==1.11.2"),), apt=(("stockfish", "/usr/games/stockfish"),))


def mlp_policy_onnx(
    layers: list[tuple[np.ndarray, np.ndarray]],
    activation: str,
    obs_shape: tuple[int, ...],
    action_names: list[str],
    scores: str,
    path: Path,
) -> Path:
    """An ONNX graph for a feed-forward policy given its (weight [out, in], bias) layers.

    ``observation`` FP32 [batch, *obs_shape] -> ``action`` INT64 [batch] (argmax: the deterministic action),
    ``action_name`` STRING [batch], and ``scores``: "probabilities" (softmax of the logits, for policy
    gradients) or "q_values" (raw outputs, for DQN). Built from the weights directly, so serving needs no
    torch and the graph is exactly the network that was evaluated."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    x = "observation"
    if len(obs_shape) > 1:
        nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
        x = "flat"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        out = f"h{i}" if i < len(layers) - 1 else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [out], transB=1))
        if i < len(layers) - 1:
            nodes.append(helper.make_node({"tanh": "Tanh", "relu": "Relu"}[activation], [out], [f"a{i}"]))
            out = f"a{i}"
        x = out
    if scores == "probabilities":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["logits"], ["q_values"]))
    nodes.append(helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0))
    inits.append(numpy_helper.from_array(np.array(action_names, dtype=object), "names"))
    nodes.append(helper.make_node("Gather", ["names", "action"], ["action_name"], axis=0))
    n = len(action_names)
    graph = helper.make_graph(
        nodes, "policy",
        [helper.make_tensor_value_info("observation", TensorProto.FLOAT, ["batch", *obs_shape])],
        [helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info("action_name", TensorProto.STRING, ["batch"]),
         helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["batch", n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aiaas")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def torch_linear_layers(seq: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every nn.Linear in a module, in order."""
    import torch

    return [(m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
            for m in seq.modules() if isinstance(m, torch.nn.Linear)]


def rollout(env: Any, act: Any, seeds: list[int]) -> list[float]:
    """Total reward of one episode per seed, acting with ``act(observation batch) -> actions``."""
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, term, trunc, _ = env.step(int(act(obs[None].astype(np.float32))[0]))
            total += float(reward)
            done = term or trunc
        returns.append(total)
    return returns


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


CARTPOLE_EVAL_SEEDS = list(range(10_000, 10_020))  # disjoint from the training seeds


@timed
def build_cartpole(ctx: BuildContext) -> BuildResult:
    import gymnasium as gym
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
    params: dict[str, Any] = {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                              "ent_coef": 0.0}
    model = PPO("MlpPolicy", venv, learning_rate=lambda p: 1e-3 * p, clip_range=lambda p: 0.2 * p, seed=ctx.seed,
                device="cpu", verbose=0, **params)
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
    config = {
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
    card = {
        "source": "trained by aiaas with stable-baselines3 2.9.2 PPO in gymnasium 1.4.0 CartPole-v1",
        "license": "model: trained by aiaas; gymnasium and stable-baselines3: MIT",
        "notes": f"PPO MlpPolicy (64-64 tanh), {steps} environment steps over 8 environments (seed {ctx.seed}); "
                 f"mean_reward = mean total reward of the exported ONNX policy, acting deterministically, over "
                 f"{len(CARTPOLE_EVAL_SEEDS)} episodes with reset seeds {CARTPOLE_EVAL_SEEDS[0]}.."
                 f"{CARTPOLE_EVAL_SEEDS[-1]} (500 is the maximum).",
        "extra": {"observation": ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"],
                  "actions": ["left", "right"], "ppo_parameters": {**params, "learning_rate": "linear 1e-3",
                                                                   "clip_range": "linear 0.2", "n_envs": 8},
                  "eval_returns": returns},
    }
    ctx.write({"model.onnx": path}, config, card)
    ctx.progress(1.0, f"mean reward {metrics['mean_reward']:.0f}")
    return BuildResult(metrics)


# Mate-in-N puzzles: (FEN, N). The build verifies each answer by brute force: the engine's move must force
# mate in N against every defence, whatever the engine thinks of it.
PUZZLES = [
    ("r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5Q2/PPPP1PPP/RNB1K1NR w KQkq - 4 4", 1),  # scholar's mate, Qxf7#
    ("rnbqkbnr/pppp1ppp/8/4p3/6P1/5P2/PPPPP2P/RNBQKBNR b KQkq - 0 2", 1),  # fool's mate, Qh4#
    ("6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1", 1),  # back rank, Ra8#
    ("k7/8/1K6/8/8/8/8/7R w - - 0 1", 1),  # Rh8#
    ("6rk/6pp/8/6N1/8/8/8/6K1 w - - 0 1", 1),  # smothered mate, Nf7#
    ("k7/8/8/8/8/8/6R1/5R1K w - - 0 1", 2),  # rook roller: Rg7, Rf8#
    ("5k2/8/4R3/8/8/8/K2R4/8 w - - 0 1", 2),  # two rooks
    ("3k4/5R2/4R3/2K5/8/8/8/8 w - - 0 1", 2),  # two rooks
    ("2K5/k7/8/8/8/8/8/5R2 w - - 0 1", 2),  # king and rook
]


def forced_mate(board: Any, depth: int) -> bool:
    """True when the side to move can force mate within ``depth`` of its own moves (brute force)."""
    for move in list(board.legal_moves):
        board.push(move)
        try:
            if board.is_checkmate():
                return True
            if depth > 1 and not board.is_game_over() and all_replies_mated(board, depth - 1):
                return True
        finally:
            board.pop()
    return False


def all_replies_mated(board: Any, depth: int) -> bool:
    for reply in list(board.legal_moves):
        board.push(reply)
        try:
            if not forced_mate(board, depth):
                return False
        finally:
            board.pop()
    return True


def solves(fen: str, n: int, uci: str) -> bool:
    """Does playing ``uci`` in ``fen`` force mate in ``n``?"""
    import chess

    board = chess.Board(fen)
    move = chess.Move.from_uci(uci)
    if move not in board.legal_moves:
        return False
    board.push(move)
    if board.is_checkmate():
        return True
    return n > 1 and not board.is_game_over() and all_replies_mated(board, n - 1)


def valid_puzzles() -> list[tuple[str, int]]:
    """The shipped puzzles that really are forced mates in N (and not in fewer moves)."""
    import chess

    ok = []
    for fen, n in PUZZLES:
        board = chess.Board(fen)
        if board.is_valid() and forced_mate(board, n) and (n == 1 or not forced_mate(board, n - 1)):
            ok.append((fen, n))
    return ok


@timed
def build_chess(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.game_chess import StockfishMove
    from aiaas.runtime import RuntimeContext
    from aiaas.types.model_config import ModelConfig

    params = {"class": "aiaas.catalog.runtime.game_chess:StockfishMove", "depth": 12 if ctx.quick else 18,
              "threads": 1, "hash_mb": 32}
    config = {
        "backend": "python",
        "task": "game-move",
        "description": "Chess: best move for a FEN position (Stockfish)",
        "max_batch_size": 16,
        "parameters": params,
        "inputs": [{"name": "fen", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "move", "datatype": "BYTES", "shape": [-1]},
            {"name": "san", "datatype": "BYTES", "shape": [-1]},
            {"name": "evaluation", "datatype": "BYTES", "shape": [-1]},
        ],
    }
    ctx.progress(0.1, "verifying the shipped mate puzzles by brute force")
    puzzles = valid_puzzles()
    if len(puzzles) < 5:
        raise RuntimeError(f"only {len(puzzles)} of the shipped puzzles are forced mates")
    ctx.progress(0.3, f"solving {len(puzzles)} puzzles with Stockfish (depth {params['depth']})")
    model = StockfishMove(ModelConfig.model_validate(config), ctx.workdir, RuntimeContext())
    model.load()
    try:
        t0 = time.perf_counter()
        out = model.run({"fen": np.array([f.encode() for f, _ in puzzles], dtype=object)}, {})
        seconds = time.perf_counter() - t0
        version = model.engine_name
    finally:
        model.unload()
    solved = [solves(fen, n, m.decode()) for (fen, n), m in zip(puzzles, out["move"], strict=True)]
    metrics = {
        "puzzles_solved": float(np.mean(solved)),
        "puzzles": float(len(puzzles)),
        "seconds_per_move": seconds / len(puzzles),
    }
    marker = ctx.workdir / "engine.json"
    marker.write_text(json.dumps({"engine": version, "puzzles": puzzles}))
    card = {
        "source": f"Debian package stockfish ({version}), driven over UCI by pip chess 1.11.2",
        "license": "Stockfish: GPL-3; python-chess: GPL-3",
        "notes": "Not trained by aiaas: the engine searches each position (depth in parameters). puzzles_solved = "
                 "share of the shipped mate-in-1/2 puzzles where the engine's move forces mate in N against every "
                 "defence (checked by brute force with python-chess).",
        "extra": {"puzzles": [{"fen": f, "mate_in": n} for f, n in puzzles]},
    }
    ctx.write({"engine.json": marker}, config, card)
    ctx.progress(1.0, f"solved {sum(solved)}/{len(solved)} puzzles")
    return BuildResult(metrics)


SPECS = [
    CatalogSpec(
        name="cartpole-ppo",
        scenario="game",
        task="reinforcement-learning-policy",
        summary="CartPole-v1 policy trained with PPO, served as ONNX",
        source="trained by aiaas (stable-baselines3 PPO, gymnasium CartPole-v1)",
        license="model trained by aiaas; gymnasium/SB3 MIT",
        build=build_cartpole,
        requires=RL,
        floors=(Floor("mean_reward", ">=", 475),),
        example=json.dumps({"inputs": [{"name": "observation", "shape": [1, 4], "datatype": "FP32",
                                        "data": [0.02, 0.1, 0.15, 0.3]}]}),
    ),
    CatalogSpec(
        name="chess-stockfish",
        scenario="game",
        task="game-move",
        summary="Chess best move for a FEN position (Stockfish engine)",
        source="Debian stockfish + pip chess",
        license="GPL-3 (Stockfish, python-chess)",
        build=build_chess,
        requires=CHESS,
        floors=(Floor("puzzles_solved", ">=", 1.0),),
        example=json.dumps({"inputs": [{"name": "fen", "shape": [1], "datatype": "BYTES",
                                        "data": ["6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1"]}]}),
    ),
]
