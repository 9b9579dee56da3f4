from aiaas.runtime.base import (
    InferFn,
    Model,
    RuntimeContext,
    SequenceUsage,
    Tensors,
    backend_class,
    llm_usage,
    register_backend,
)

__all__ = ["InferFn", "Model", "RuntimeContext", "SequenceUsage", "Tensors", "backend_class", "llm_usage",
           "register_backend"]
