from aiaas.runtime.base import (
    BlockingModel,
    InferFn,
    Model,
    RuntimeContext,
    SequenceUsage,
    Tensors,
    backend_class,
    llm_usage,
    predict_blocking,
    register_backend,
)

__all__ = [
    "BlockingModel",
    "InferFn",
    "Model",
    "RuntimeContext",
    "SequenceUsage",
    "Tensors",
    "backend_class",
    "llm_usage",
    "predict_blocking",
    "register_backend",
]
