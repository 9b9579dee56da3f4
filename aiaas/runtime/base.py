"""The one ``Model`` interface every backend implements.

A ``Model`` is one loaded instance of one model version. Batching, replicas (``instances``) and pipelines wrap
it; they never subclass it. Tensors are ``dict[str, numpy.ndarray]``; BYTES tensors are object arrays of
``bytes``. With ``max_batch_size > 0`` the first axis of every input and output is the batch axis.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.types.model_config import ModelConfig, TensorSpec

Tensors = dict[str, np.ndarray]

# (model name, version or None for latest, inputs, parameters) -> outputs; lets a pipeline call other models
InferFn = Callable[[str, int | None, Tensors, dict[str, Any]], Awaitable[Tensors]]


@dataclass(slots=True)
class SequenceUsage:
    """One generated sequence of an LLM request (one prompt row): what the token metrics and metering count."""

    prompt_tokens: int
    generated: int = 0
    t_first: float | None = None  # time.perf_counter() when its first token came out
    t_end: float = 0.0  # time.perf_counter() when it finished


# The sequences an LLM ran for the inference in progress. The service layer sets a fresh list around one
# ``infer`` and reads it afterwards; an LLM model's async ``predict`` appends one entry per prompt row. A context
# variable because tensors, not usage, cross the batching layer, and async models run in the request's own task.
llm_usage: ContextVar[list[SequenceUsage] | None] = ContextVar("aiaas_llm_usage", default=None)


@dataclass(slots=True)
class RuntimeContext:
    """What a backend may need from the server, injected so runtimes never import the layers above."""

    default_intra_op_threads: int = 0
    infer: InferFn | None = None  # set by the service layer for pipelines
    extra: dict[str, Any] = field(default_factory=dict)


BlockingFn = Callable[[Tensors, dict[str, Any]], Tensors]  # a model's blocking call, run in a worker thread


class Model(ABC):
    """Load / ``predict`` (async) / unload; ``predict_stream`` for models that produce results incrementally.

    ``predict`` is the one inference call. A model whose work is Python awaiting other things (a pipeline, an
    LLM engine's queues) implements it directly and runs on the server's event loop with exactly one instance.
    A framework whose call blocks (onnxruntime, TVM, numpy code) subclasses ``BlockingModel`` and implements
    ``run``: the batcher's replica threads and worker processes call ``run`` directly, ``predict`` runs it in a
    worker thread for anyone else on the event loop.
    """

    def __init__(self, config: ModelConfig, version_dir: Path, context: RuntimeContext) -> None:
        self.config = config
        self.version_dir = version_dir
        self.context = context

    @classmethod
    def on_loop(cls, config: ModelConfig, version_dir: Path) -> bool:
        """Whether instances of this class for ``config`` run on the event loop (one instance serves every
        request) rather than in batcher threads or worker processes. Decided per class, before loading."""
        return not issubclass(cls, BlockingModel)

    @abstractmethod
    def load(self) -> None:
        """Read artifacts and get ready; raise with a clear message if they are broken."""

    @abstractmethod
    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        """Run on a (possibly batched) set of inputs."""

    def blocking(self) -> BlockingFn | None:
        """The blocking call behind ``predict`` that a worker thread may call directly; None when ``predict``
        must run on the event loop."""
        return None

    async def predict_stream(self, inputs: Tensors, parameters: dict[str, Any]) -> AsyncIterator[Tensors]:
        """Yield partial results; the default yields the whole prediction once."""
        yield await self.predict(inputs, parameters)

    def unload(self) -> None:
        """Release memory and handles."""

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        """Inputs and outputs read from the artifact after load, for configs that leave them out."""
        return None


class BlockingModel(Model):
    """The adapter for frameworks whose call blocks: implement ``run`` (called from a worker thread)."""

    @abstractmethod
    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        """Run on a (possibly batched) set of inputs; blocks, so it is never called on the event loop."""

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        return await asyncio.to_thread(self.run, inputs, parameters)

    def blocking(self) -> BlockingFn:
        return self.run


def predict_blocking(model: Model, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
    """One prediction from a thread without an event loop (a batcher thread, a worker process, a Ray actor)."""
    fn = model.blocking()
    if fn is not None:
        return fn(inputs, parameters)
    return asyncio.run(model.predict(inputs, parameters))


_BACKENDS: dict[str, type[Model]] = {}
_LOCK = threading.Lock()


def register_backend(name: str, cls: type[Model]) -> None:
    with _LOCK:
        _BACKENDS[name] = cls


def backend_class(name: str) -> type[Model]:
    from aiaas.runtime import _builtin  # noqa: F401  (registers the built-in backends)

    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(sorted(_BACKENDS))}") from None
