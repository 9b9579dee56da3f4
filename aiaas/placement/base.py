"""One replica of one model version, wherever it runs: the interface the batcher calls.

A batch is a list in and a list of the same length out: ``run`` takes each request's inputs, concatenates them
along the batch axis, makes one model call (``predict``: in this thread, in a worker process, or in a Ray actor)
and splits the outputs, so every request gets its own result or its own error. A replica whose host died
(process exit, Ray node lost) raises ``ReplicaLost`` for the whole batch; the batcher retries such requests once
on another ready replica while the replica restarts itself.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from aiaas import errors
from aiaas.errors import AiaasError, InferenceError, ServiceUnavailable
from aiaas.runtime.base import Tensors
from aiaas.types.model_config import ModelConfig, TensorSpec

STATES = ("starting", "ready", "restarting", "failed", "stopped")


class ReplicaLost(ServiceUnavailable):
    """The process or node that held a batch died while running it (503, names the model and what happened).
    ``suspect``: the batch itself may have killed it (a worker crash, not a lost node), so a batch of one request
    is not retried -- a request that segfaults its replica must not take down the next one."""

    def __init__(self, message: str, *, suspect: bool = True, retry_after: float | None = 1) -> None:
        super().__init__(message, retry_after=retry_after)
        self.suspect = suspect


class RemoteError(Exception):
    """The model raised inside a worker process or actor (which lives on); the message says what and why."""


def encode_error(error: BaseException) -> bytes:
    """What a worker or actor sends back when the model raised: the message, and the class when it is one of
    aiaas's own errors (``InvalidInput`` -> 400), so the caller gets the same answer as with ``thread``."""
    if isinstance(error, errors.AiaasError):
        return json.dumps({"class": type(error).__name__, "message": error.message, "param": error.param}).encode()
    return json.dumps({"class": None, "message": f"{type(error).__name__}: {error}"}).encode()


def decode_error(payload: bytes) -> BaseException:
    """The error ``encode_error`` described; only classes of ``aiaas.errors`` are rebuilt, anything else is a
    ``RemoteError`` with the message."""
    try:
        doc = json.loads(payload)
        message = str(doc["message"])
    except (ValueError, KeyError, TypeError):
        return RemoteError(payload.decode("utf-8", "replace"))
    cls = getattr(errors, str(doc.get("class")), None) if doc.get("class") else None
    if isinstance(cls, type) and issubclass(cls, errors.AiaasError):
        return cls(message, param=doc.get("param"))
    return RemoteError(message)


@dataclass
class ReplicaStats:
    batches: int = 0
    rows: int = 0
    batch_s: float = 0.0  # total seconds of model calls
    restarts: int = 0
    last_error: str = ""
    started_at: float = field(default_factory=time.time)


class Replica(ABC):
    """Lifecycle (``start`` / ``wait_ready`` / ``close``), one model call per batch (``predict``), and ``run``."""

    placement: ClassVar[str]
    is_async: bool = (
        False  # True: the model runs on the event loop, the executor awaits ``Model.predict`` (thread only)
    )

    def __init__(self, rid: str, config: ModelConfig) -> None:
        self.id = rid
        self.config = config
        self.state = "starting"
        self.stats = ReplicaStats()
        self.retiring = False  # scale-down: the batcher stops giving it batches, then closes it
        self._ready = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Load the model (blocking); raise with a clear message when it cannot load."""

    @abstractmethod
    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        """One model call on an already concatenated batch; ``ReplicaLost`` when the host died meanwhile."""

    def close(self) -> None:
        self.state = "stopped"
        self._ready.set()  # nobody waits on a closed replica

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        return None

    def set_state(self, state: str) -> None:
        self.state = state
        if state == "ready":
            self._ready.set()
        elif state in ("starting", "restarting"):
            self._ready.clear()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block while the replica (re)starts; True when it is ready to take a batch."""
        self._ready.wait(timeout)
        return self.state == "ready"

    @property
    def ready(self) -> bool:
        return self.state == "ready" and not self.retiring

    def node(self) -> tuple[str, str]:
        """(node id, host): ``local`` for replicas on this machine."""
        return "local", "local"

    def pid(self) -> int | None:
        return None

    def info(self) -> dict[str, Any]:
        s = self.stats
        node_id, host = self.node()
        return {
            "id": self.id,
            "placement": self.placement,
            "node": node_id,
            "host": host,
            "pid": self.pid(),
            "state": "retiring" if self.retiring and self.state == "ready" else self.state,
            "started_at": s.started_at,
            "batches": s.batches,
            "rows": s.rows,
            "batch_ms_avg": round(1000 * s.batch_s / s.batches, 3) if s.batches else 0.0,
            "restarts": s.restarts,
            "last_error": s.last_error,
        }

    # -- a batch --------------------------------------------------------------------------------
    def run(
        self,
        inputs: list[Tensors],
        parameters: dict[str, Any],
        calls: list[tuple[int, float]],
        batched: bool,
    ) -> list[Tensors | BaseException]:
        """Run the requests ``inputs`` as one batch; one result or error per request, in order. Appends (rows,
        seconds) of each successful model call to ``calls``. A failing batch of several requests is rerun request
        by request, so one bad request cannot fail its neighbours; a lost replica fails them all with
        ``ReplicaLost`` (the caller retries elsewhere)."""
        sizes = [_rows(x, batched) for x in inputs]
        rows = sum(sizes)
        merged = inputs[0] if len(inputs) == 1 else {n: np.concatenate([x[n] for x in inputs]) for n in inputs[0]}
        t0 = time.monotonic()
        try:
            outputs = self.predict(merged, parameters)
        except ReplicaLost as e:
            return [e] * len(inputs)
        except Exception as e:
            if len(inputs) > 1:
                out: list[Tensors | BaseException] = []
                for x in inputs:
                    out.extend(self.run([x], parameters, calls, batched))
                return out
            return [self.error(e)]
        dt = time.monotonic() - t0
        self.stats.batches += 1
        self.stats.rows += rows
        self.stats.batch_s += dt
        if batched:
            for name, value in outputs.items():
                if not isinstance(value, np.ndarray) or value.ndim == 0 or value.shape[0] != rows:
                    err = InferenceError(
                        f"model {self.config.name!r} returned output {name!r} with shape "
                        f"{getattr(value, 'shape', None)}, not batch-first with {rows} rows"
                    )
                    return [err] * len(inputs)
        calls.append((rows, dt))
        if len(inputs) == 1:
            return [outputs]
        parts: list[Tensors | BaseException] = []
        offset = 0
        for n in sizes:
            parts.append({k: v[offset : offset + n] for k, v in outputs.items()})
            offset += n
        return parts

    def error(self, error: BaseException) -> BaseException:
        if isinstance(error, AiaasError):
            return error
        if isinstance(error, RemoteError):
            return InferenceError(f"model {self.config.name!r} failed: {error}")
        return InferenceError(f"model {self.config.name!r} failed: {type(error).__name__}: {error}")


def _rows(inputs: Tensors, batched: bool) -> int:
    if not batched or not inputs:
        return 1
    return int(next(iter(inputs.values())).shape[0])
