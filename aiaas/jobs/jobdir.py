"""The layout of one job's directory, shared by the launcher and the workers::

spec.json            the JobSpec (training/validation files rewritten to data/...)
data/                the job's own copy of its data files
events.jsonl         progress and messages (rank 0)
checkpoints/         step-00000120.pt ... (rank 0, atomic, keep_last)
logs/rank<r>.log     per-rank logs; logs/torchrun.log: torchrun's own output
errors/rank<r>.json  the last error each rank hit (message, type, traceback, fatal)
ranks/rank<r>.json   per-rank summary at the end (steps, parameter checksum)
export/model.onnx    the exported model
result.json          metrics, data hash, hyperparameters (written last: its presence means success)
launcher.json        pid/create time of the torchrun process, so a restarted server can find it
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CKPT = re.compile(r"^step-(\d{8})\.pt$")


@dataclass(frozen=True)
class JobDir:
    root: Path

    spec = property(lambda self: self.root / "spec.json")
    data = property(lambda self: self.root / "data")
    events = property(lambda self: self.root / "events.jsonl")
    checkpoints = property(lambda self: self.root / "checkpoints")
    logs = property(lambda self: self.root / "logs")
    errors = property(lambda self: self.root / "errors")
    ranks = property(lambda self: self.root / "ranks")
    export = property(lambda self: self.root / "export")
    result = property(lambda self: self.root / "result.json")
    launcher = property(lambda self: self.root / "launcher.json")

    def rank_log(self, rank: int | str) -> Path:
        return self.logs / f"rank{rank}.log"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:08d}.pt"

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path), ascending."""
        if not self.checkpoints.is_dir():
            return []
        found = []
        for p in self.checkpoints.iterdir():
            m = _CKPT.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def read_errors(self) -> list[dict[str, Any]]:
        out = []
        if self.errors.is_dir():
            for p in sorted(self.errors.glob("rank*.json")):
                try:
                    out.append(json.loads(p.read_text()))
                except (OSError, ValueError):
                    continue
        return sorted(out, key=lambda e: e.get("ts", 0))

    def write_error(self, rank: int, restart: int, e: BaseException, fatal: bool, message: str | None = None) -> None:
        """Record the last error of a worker process (``errors/rank<r>.json``, read by ``read_errors``); never
        raises, so reporting an error cannot hide it."""
        with contextlib.suppress(Exception):
            write_json_atomic(
                self.errors / f"rank{rank}.json",
                {
                    "ts": time.time(),
                    "rank": rank,
                    "restart": restart,
                    "fatal": fatal,
                    "type": type(e).__name__,
                    "message": message or getattr(e, "message", None) or str(e) or type(e).__name__,
                    "traceback": "".join(traceback.format_exception(e))[-4000:],
                },
            )


def die_with_parent() -> None:
    """In a worker process: if its launcher (torchrun, the scheduler) is SIGKILLed, take the worker down too
    (Linux PR_SET_PDEATHSIG), so no orphan keeps a core busy."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
