"""``chess-stockfish``: Debian's Stockfish engine behind python-chess, measured on mate puzzles checked at
build time."""

from __future__ import annotations

import json
import time
from typing import Any

from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

STOCKFISH = "/usr/games/stockfish"  # where Debian's stockfish package installs the engine
CHESS = Requirement(pip=(("chess", "chess==1.11.2"),), apt=(("stockfish", STOCKFISH),))

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
    import numpy as np

    from aiaas.catalog.runtime.game_chess import StockfishMove
    from aiaas.runtime import RuntimeContext
    from aiaas.types.model_config import ModelConfig

    params = {
        "class": "aiaas.catalog.runtime.game_chess:StockfishMove",
        "depth": 12 if ctx.quick else 18,
        "threads": 1,
        "hash_mb": 32,
    }
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


SPEC = CatalogSpec(
    name="chess-stockfish",
    build_s=1,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="game",
    task="game-move",
    summary="Chess best move for a FEN position (Stockfish engine)",
    source="Debian stockfish + pip chess",
    license="GPL-3 (Stockfish, python-chess)",
    build=build_chess,
    requires=CHESS,
    floors=(Floor("puzzles_solved", ">=", 1.0),),
    example=json.dumps(
        {
            "inputs": [
                {"name": "fen", "shape": [1], "datatype": "BYTES", "data": ["6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1"]}
            ]
        }
    ),
)
