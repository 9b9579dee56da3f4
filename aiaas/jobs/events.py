"""Job events as JSON lines in ``<job dir>/events.jsonl``: written by rank 0, tailed by the launcher.

One event: ``{"ts": 1732800000.1, "level": "info", "type": "message" | "metrics", "message": "...", "data": {}}``.
Metrics events carry ``step, total_steps, loss, samples_per_s, epoch, eta_s``; message events may carry
``data.phase`` (rendezvous, training, checkpointing, exporting, resumed) which the launcher turns into the
job's sub-status. Lines are appended with one ``write`` each, so a reader never sees half an event (a partial
last line is left for the next read).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class EventWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, message: str, *, type: str = "message", level: str = "info", **data: Any) -> dict[str, Any]:
        event = {"ts": time.time(), "level": level, "type": type, "message": message, "data": data}
        line = (json.dumps(event, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return event


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events after byte ``offset``, and the offset to continue from."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in chunk[: end + 1].splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # never let one bad line stop the stream
    return events, offset + end + 1
