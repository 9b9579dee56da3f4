"""``placement: thread``: a model instance inside the server process, run by one batcher thread (today's path).

onnxruntime releases the GIL, so instances run truly in parallel; nothing crosses a process boundary.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from typing import Any, ClassVar

from aiaas.placement.base import Replica
from aiaas.runtime.base import BlockingFn, Model, Tensors
from aiaas.types.model_config import TensorSpec


class ThreadReplica(Replica):
    placement: ClassVar[str] = "thread"

    def __init__(self, rid: str, model: Model) -> None:
        super().__init__(rid, model.config)
        self.model = model
        self._blocking: BlockingFn | None = model.blocking()
        self.is_async = self._blocking is None

    def start(self) -> None:
        self.model.load()
        self.set_state("ready")

    def mark_loaded(self) -> ThreadReplica:
        """For a model loaded by its caller (tests, the executor wrapping bare models)."""
        self.set_state("ready")
        return self

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        if self._blocking is None:
            raise RuntimeError(f"model {self.config.name!r} runs on the event loop; await model.predict")
        return self._blocking(inputs, parameters)

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        return self.model.signature()

    def close(self) -> None:
        super().close()
        self.model.unload()  # its memory is freed here; release_memory() hands the heap back to the OS


def release_memory() -> None:
    """Return freed heap to the OS after in-process models were unloaded (glibc keeps it otherwise, and RSS would
    not drop). Called once after closing a model's replicas, or once after unloading many models."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)

    def pid(self) -> int | None:
        import os

        return os.getpid()
