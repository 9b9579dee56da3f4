from aiaas.runtime.base import InferFn, Model, RuntimeContext, Tensors, backend_class, register_backend

__all__ = ["InferFn", "Model", "RuntimeContext", "Tensors", "backend_class", "register_backend"]
