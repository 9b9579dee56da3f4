"""Triton-style statistics of one model version's batching, and the observer that metrics plug into."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class BatchObserver(Protocol):
    def batch(self, size: int, compute_s: float) -> None: ...

    def queue_depth(self, depth: int) -> None: ...


@dataclass
class _Counter:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, n: int = 1) -> None:
        self.count += n
        self.ns += int(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Triton-style statistics for one model version."""

    inference_count: int = 0  # rows inferred
    execution_count: int = 0  # model calls
    last_inference_ms: int = 0
    success: _Counter = field(default_factory=_Counter)
    fail: _Counter = field(default_factory=_Counter)
    queue: _Counter = field(default_factory=_Counter)
    compute_infer: _Counter = field(default_factory=_Counter)
    batches: dict[int, _Counter] = field(default_factory=dict)

    def record_batch(self, size: int, compute_s: float) -> None:
        self.execution_count += 1
        self.inference_count += size
        self.last_inference_ms = int(time.time() * 1000)
        self.batches.setdefault(size, _Counter()).add(compute_s)
