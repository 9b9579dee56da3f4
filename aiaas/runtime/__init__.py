from aiaas.runtime.base import (
    BlockingModel,
    InferFn,
    Model,
    RuntimeContext,
    Tensors,
    backend_class,
    predict_blocking,
    register_backend,
)

__all__ = [
    "BlockingModel", "InferFn", "Model", "RuntimeContext", "Tensors", "backend_class", "predict_blocking",
    "register_backend",
]  # fmt: skip
