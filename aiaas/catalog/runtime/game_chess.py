"""Serving side of ``chess-stockfish``: a FEN position in, Stockfish's best move out.

One Stockfish process per model instance, driven over UCI by python-chess. Positions are checked before they
reach the engine (an illegal FEN is the client's error, not the engine's), and a crashed engine is restarted
once per request rather than taking the model down.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.runtime import BlockingModel, Tensors

ENGINE_PATHS = ("/usr/games/stockfish", "/usr/bin/stockfish")
MAX_DEPTH = 30


def find_engine(configured: str | None) -> str:
    for cand in (configured, shutil.which("stockfish"), *ENGINE_PATHS):
        if cand and Path(cand).is_file():
            return cand
    raise FileNotFoundError("stockfish not found: apt-get install -y stockfish")


class StockfishMove(BlockingModel):
    """``fen`` BYTES [-1] -> ``move`` (UCI), ``san``, ``evaluation`` ("+0.35" pawns or "mate 2", side to move)."""

    engine: Any = None
    engine_name = "stockfish"

    def load(self) -> None:
        self.path = find_engine(self.config.parameters.get("engine"))
        self._open()

    def _open(self) -> None:
        import chess.engine

        self.engine = chess.engine.SimpleEngine.popen_uci(self.path)
        opts = {
            "Threads": int(self.config.parameters.get("threads", 1)),
            "Hash": int(self.config.parameters.get("hash_mb", 32)),
        }
        self.engine.configure({k: v for k, v in opts.items() if k in self.engine.options})
        self.engine_name = str(self.engine.id.get("name", "stockfish"))

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        import chess
        import chess.engine

        depth = int(parameters.get("depth", self.config.parameters.get("depth", 15)))
        if not 1 <= depth <= MAX_DEPTH:
            raise InvalidInput(f"parameter depth must be 1..{MAX_DEPTH}, got {depth}")
        boards = []
        for i, raw in enumerate(inputs["fen"].reshape(-1)):
            fen = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw)
            try:
                board = chess.Board(fen)
            except ValueError as e:
                raise InvalidInput(f"fen[{i}] is not a valid FEN: {e}") from None
            if not board.is_valid():
                raise InvalidInput(f"fen[{i}] is not a legal position ({board.status()!r})")
            outcome = board.outcome()
            if outcome is not None:
                raise InvalidInput(f"fen[{i}] has no move to play: {outcome.termination.name.lower()}")
            boards.append(board)
        moves, sans, evals = [], [], []
        for board in boards:
            try:
                result = self.engine.play(board, chess.engine.Limit(depth=depth), info=chess.engine.INFO_SCORE)
            except chess.engine.EngineTerminatedError:  # the process died: start a new one and retry once
                self._open()
                result = self.engine.play(board, chess.engine.Limit(depth=depth), info=chess.engine.INFO_SCORE)
            move = result.move
            moves.append(move.uci().encode())
            sans.append(board.san(move).encode())
            evals.append(_evaluation(result.info.get("score"), board.turn).encode())
        return {name: np.array(v, dtype=object) for name, v in (("move", moves), ("san", sans), ("evaluation", evals))}

    def unload(self) -> None:
        if self.engine is not None:
            with contextlib.suppress(Exception):  # a dead engine needs no quitting
                self.engine.quit()
            self.engine = None


def _evaluation(score: Any, turn: bool) -> str:
    if score is None:
        return ""
    pov = score.pov(turn)
    mate = pov.mate()
    if mate is not None:
        return f"mate {mate}"
    return f"{pov.score() / 100:+.2f}"
