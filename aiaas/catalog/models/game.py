"""Alias: ``aiaas.catalog.models.game`` before the catalog had one module per model (rl_common, cartpole_ppo,
chess_stockfish). Kept so that code importing the old path keeps working; new code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import cartpole_ppo, chess_stockfish
from aiaas.catalog.models.cartpole_ppo import CARTPOLE_EVAL_SEEDS, RL, build_cartpole
from aiaas.catalog.models.chess_stockfish import (
    CHESS,
    PUZZLES,
    all_replies_mated,
    build_chess,
    forced_mate,
    solves,
    valid_puzzles,
)
from aiaas.catalog.models.rl_common import mlp_policy_onnx, ort_session, rollout, torch_linear_layers

SPECS = [cartpole_ppo.SPEC, chess_stockfish.SPEC]

__all__ = [
    "CARTPOLE_EVAL_SEEDS",
    "CHESS",
    "PUZZLES",
    "RL",
    "SPECS",
    "all_replies_mated",
    "build_cartpole",
    "build_chess",
    "forced_mate",
    "mlp_policy_onnx",
    "ort_session",
    "rollout",
    "solves",
    "torch_linear_layers",
    "valid_puzzles",
]
