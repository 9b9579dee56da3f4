"""A queued request and the result it gets back (with the timings the statistics and traces are built from)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiaas.runtime.base import Tensors


@dataclass(slots=True)
class InferResult:
    outputs: Tensors
    queue_s: float  # time spent waiting in the queue
    compute_s: float  # time of the model call this request was part of
    batch_size: int  # rows in that model call


@dataclass(slots=True)
class Item:
    inputs: Tensors
    parameters: dict[str, Any]
    rows: int
    key: tuple[Any, ...]  # requests with equal keys may share a batch (policy.BatchPolicy.batch_key)
    future: asyncio.Future[InferResult]
    enqueued: float
    deadline: float
    retried: bool = False  # already retried once after its replica was lost
